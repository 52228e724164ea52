package auth

import "errors"

// Reasons a token is refused: short, stable strings meant as metric labels.
const (
	ReasonMalformed      = "malformed"        // not a compact JWS: size, dots, base64, JSON, a kid that is no string, a crit header
	ReasonSignature      = "signature"        // no configured key verifies the signature
	ReasonAlgorithm      = "algorithm"        // alg is none, unknown, or not one the configured keys support
	ReasonExpired        = "expired"          // exp is in the past (beyond the leeway)
	ReasonNotYetValid    = "not_yet_valid"    // nbf is in the future (beyond the leeway)
	ReasonIssuedInFuture = "issued_in_future" // iat is in the future (beyond the leeway)
	ReasonIssuer         = "issuer"           // iss is missing or differs from Config.Issuer
	ReasonAudience       = "audience"         // aud is missing or does not name Config.Audience
	ReasonSub            = "sub"              // sub is missing, empty or not a string
	ReasonClaims         = "claims"           // a claim has the wrong shape, or a required exp is missing
	ReasonUnknownKey     = "unknown_key"      // no key with the token's kid (or of its type) is known
)

// Reasons returns every reason Verify can report, for pre-registering metric
// labels.
func Reasons() []string {
	return []string{
		ReasonMalformed, ReasonSignature, ReasonAlgorithm, ReasonExpired,
		ReasonNotYetValid, ReasonIssuedInFuture, ReasonIssuer, ReasonAudience,
		ReasonSub, ReasonClaims, ReasonUnknownKey,
	}
}

// Error is how Verify refuses a token. Reason is one of the Reason constants;
// Err says more, for logs (never for the client: it may echo token content).
type Error struct {
	Reason string
	Err    error
}

// Error returns "auth: <reason>: <detail>".
func (e *Error) Error() string {
	if e.Err == nil {
		return "auth: " + e.Reason
	}
	return "auth: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the detail, so errors.Is sees golang-jwt's sentinel errors.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of an *Error in err's chain, or "" when there is
// none (nil, or an error that did not come from Verify).
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// refuse builds the *Error for reason around detail.
func refuse(reason string, detail error) *Error {
	return &Error{Reason: reason, Err: detail}
}
