package wsproto

// Close codes (RFC 6455 §7.4.1) used by wshub; see PROTOCOL.md "Closing".
const (
	CloseNormal          uint16 = 1000 // normal close
	CloseGoingAway       uint16 = 1001 // gateway shutting down (drain)
	CloseProtocolError   uint16 = 1002 // peer broke RFC 6455
	CloseUnsupportedData uint16 = 1003 // binary where only text is accepted
	CloseNoStatus        uint16 = 1005 // reported for a close without payload; never sent
	CloseAbnormal        uint16 = 1006 // connection lost without a close; never sent
	CloseInvalidPayload  uint16 = 1007 // text that is not UTF-8
	ClosePolicy          uint16 = 1008 // slow consumer, auth expired, partial-input limits
	CloseTooBig          uint16 = 1009 // message over the read limit
	CloseInternal        uint16 = 1011 // internal error
)

// ValidCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 §7.4 and the IANA registry): 1000-1003, 1007-1014 (1012-1014 were
// registered after the RFC), and 3000-4999. 1004, 1005, 1006, 1015, codes
// below 1000 and the unassigned 1016-2999 are protocol errors.
func ValidCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
