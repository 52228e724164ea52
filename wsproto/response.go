package wsproto

import (
	"net/http"
	"strconv"
)

// rejectResponses holds the prebuilt error responses, so a rejection costs no
// allocation (a flood of bad requests should not feed the GC).
var rejectResponses = map[int][]byte{}

// retryResponses are the 429 answers with Retry-After 1..maxPrebuiltRetry
// seconds (index 0 unused).
var retryResponses [maxPrebuiltRetry + 1][]byte

const maxPrebuiltRetry = 60

func init() {
	for _, code := range []int{400, 401, 403, 404, 405, 426, 429, 431, 500, 503} {
		rejectResponses[code] = buildRejectResponse(code)
	}
	for s := 1; s <= maxPrebuiltRetry; s++ {
		retryResponses[s] = buildRetryResponse(s)
	}
}

func buildRetryResponse(seconds int) []byte {
	return []byte("HTTP/1.1 429 Too Many Requests\r\nRetry-After: " + strconv.Itoa(seconds) +
		"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
}

// TooManyRequests returns the complete "HTTP/1.1 429 Too Many Requests"
// response with "Retry-After: seconds" (at least 1), "Connection: close" and
// "Content-Length: 0". Up to 60 seconds it returns a shared slice, which
// must not be modified, and does not allocate.
func TooManyRequests(seconds int) []byte {
	seconds = max(seconds, 1)
	if seconds <= maxPrebuiltRetry {
		return retryResponses[seconds]
	}
	return buildRetryResponse(seconds)
}

func buildRejectResponse(code int) []byte {
	text := http.StatusText(code)
	if text == "" {
		text = "Error"
	}
	s := "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\nConnection: close\r\nContent-Length: 0\r\n"
	switch code {
	case 426:
		// RFC 6455 §4.2.2: tell the client the version we speak; RFC 9110
		// §15.5.22: a 426 names the protocol to upgrade to.
		s += "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
	case 405:
		s += "Allow: GET\r\n"
	}
	return []byte(s + "\r\n")
}

// RejectResponse returns the complete HTTP error response for an HTTP status:
// "HTTP/1.1 <code> <text>", "Connection: close", "Content-Length: 0" (426 adds
// "Sec-WebSocket-Version: 13"). Callers refusing an upgrade for their own
// reasons (401 for a bad token, 503 at the connection ceiling) use it too.
// Common codes return a shared slice that must not be modified.
func RejectResponse(code int) []byte {
	if b, ok := rejectResponses[code]; ok {
		return b
	}
	return buildRejectResponse(code)
}
