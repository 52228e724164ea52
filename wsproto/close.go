package wsproto

// Close codes used by wshub (PROTOCOL.md).
const (
	CloseNormal          uint16 = 1000
	CloseGoingAway       uint16 = 1001
	CloseProtocolError   uint16 = 1002
	CloseUnsupportedData uint16 = 1003
	CloseNoStatus        uint16 = 1005
	CloseInvalidPayload  uint16 = 1007
	ClosePolicy          uint16 = 1008
	CloseTooBig          uint16 = 1009
	CloseInternal        uint16 = 1011
)

// ValidCloseCode reports whether a peer may send code in a close frame.
func ValidCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
