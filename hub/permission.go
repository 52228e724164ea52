package hub

import (
	"unsafe"

	"github.com/wshub/wshub/hub/access"
)

// forbidden holds the 403 answer of every refusing verdict, built once.
var forbidden = func() (e [len(access.Reasons)]*Error) {
	for v, r := range access.Reasons {
		if access.Verdict(v) != access.Allowed {
			e[v] = &Error{403, r}
		}
	}
	return
}()

// view reads b as a string without copying, for a call that does not keep it.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// canSubscribe applies the access policy to a subscribe; nil means allowed.
func (h *Hub) canSubscribe(cs *connData, channel []byte) *Error {
	return forbidden[h.policy.CanSubscribe(cs.identity(), view(channel))]
}

// canPublish applies the access policy to a client publish.
func (h *Hub) canPublish(cs *connData, channel []byte) *Error {
	return forbidden[h.policy.CanPublish(cs.identity(), view(channel), cs.find(channel) >= 0)]
}
