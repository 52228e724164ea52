package hub

import "errors"

// ErrUnavailable is reported by a Broker that cannot reach its backend; the
// client sees error code 503.
var ErrUnavailable = errors.New("broker unavailable")
