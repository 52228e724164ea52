// Package wstest is the client side of RFC 6455 for tests: a deliberately
// low-level client that sends exactly the bytes a test wants, including
// frames a real library would refuse to produce (unmasked, bad opcodes,
// oversize control frames), and checks what the server answers.
package wstest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Key is the Sec-WebSocket-Key every test upgrade sends (RFC 6455's sample).
const Key = "dGhlIHNhbXBsZSBub25jZQ=="

// Timeout bounds every read and write the client makes.
var Timeout = 5 * time.Second

// UpgradeRequest is a valid upgrade request for path, plus extra header lines.
func UpgradeRequest(host, path string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// Frame encodes one client frame; masked=false and odd opcodes make bad ones.
func Frame(op ws.OpCode, fin, masked bool, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	ws.Cipher(b[start:], key, 0)
	return b
}

// CloseBody is a close frame payload: the code, then the reason.
func CloseBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// Client is one raw TCP connection to a WebSocket server. Every failure is
// fatal to the test.
type Client struct {
	T      testing.TB
	Conn   net.Conn
	Reader *bufio.Reader
	host   string
}

// Dial opens a TCP connection to addr without upgrading; it is closed when
// the test ends.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	return DialWith(t, addr, net.Dialer{Timeout: Timeout})
}

// DialWith is Dial with a caller's dialer (e.g. to shrink socket buffers).
func DialWith(t testing.TB, addr string, d net.Dialer) *Client {
	t.Helper()
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{T: t, Conn: c, Reader: bufio.NewReader(c), host: addr}
}

// Upgrade sends a valid upgrade for path and fails unless the answer is 101.
func (c *Client) Upgrade(path string, extra ...string) {
	c.T.Helper()
	c.Write([]byte(UpgradeRequest(c.host, path, extra...)))
	if resp := c.ReadResponse(); resp.StatusCode != http.StatusSwitchingProtocols {
		c.T.Fatalf("upgrade %s: status %d", path, resp.StatusCode)
	}
}

// Write sends b as it is.
func (c *Client) Write(b []byte) {
	c.T.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.Conn.Write(b); err != nil {
		c.T.Fatalf("write: %v", err)
	}
}

// ReadResponse reads the server's HTTP answer to an upgrade request.
func (c *Client) ReadResponse() *http.Response {
	c.T.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(Timeout))
	resp, err := http.ReadResponse(c.Reader, nil)
	if err != nil {
		c.T.Fatalf("reading the HTTP response: %v", err)
	}
	return resp
}

// MaxFrame bounds the payload ReadFrame accepts: far above anything a test
// sends, far below what would exhaust memory.
const MaxFrame = 64 << 20

// ReadFrame reads one whole frame from r, as ws.ReadFrame does (a masked
// payload stays masked), but refuses a declared payload over MaxFrame where
// ws.ReadFrame allocates whatever length the peer declares.
func ReadFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > MaxFrame {
		return ws.Frame{}, fmt.Errorf("frame of %d bytes is over the %d limit", h.Length, MaxFrame)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return ws.Frame{}, err
	}
	return ws.Frame{Header: h, Payload: p}, nil
}

// ReadFrame returns the next server frame; a masked one is an error, since
// servers must never mask.
func (c *Client) ReadFrame(timeout time.Duration) (ws.Frame, error) {
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	f, err := ReadFrame(c.Reader)
	if err == nil && f.Header.Masked {
		err = errors.New("server sent a masked frame")
	}
	return f, err
}

// NextFrame returns the next frame that is not a ping.
func (c *Client) NextFrame() ws.Frame {
	c.T.Helper()
	for {
		f, err := c.ReadFrame(Timeout)
		if err != nil {
			c.T.Fatalf("reading a frame: %v", err)
		}
		if f.Header.OpCode != ws.OpPing {
			return f
		}
	}
}

// ExpectClose reads up to a close frame and checks its code. With answer the
// client replies with the same close, as a well-behaved client does.
func (c *Client) ExpectClose(code uint16, answer bool) {
	c.T.Helper()
	c.ExpectCloseWithin(code, answer, Timeout)
}

// ExpectCloseWithin is ExpectClose waiting up to d for each frame, for a
// close that is due later than Timeout allows.
func (c *Client) ExpectCloseWithin(code uint16, answer bool, d time.Duration) {
	c.T.Helper()
	for {
		f, err := c.ReadFrame(d)
		if err != nil {
			c.T.Fatalf("waiting for close %d: %v", code, err)
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		if len(f.Payload) < 2 {
			c.T.Fatalf("close without a code, want %d", code)
		}
		if got := binary.BigEndian.Uint16(f.Payload); got != code {
			c.T.Fatalf("close code %d (%q), want %d", got, f.Payload[2:], code)
		}
		if answer {
			c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			c.Conn.Write(Frame(ws.OpClose, true, true, f.Payload))
		}
		return
	}
}

// ExpectEOF checks that the server closes the connection within d, reading
// (and discarding) whatever comes before.
func (c *Client) ExpectEOF(d time.Duration) {
	c.T.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.Reader)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.T.Fatalf("server did not close the connection within %v", d)
	}
}

// ExpectRejected checks that the server refused the upgrade with status code
// (a 426 must name the supported version) and closed the connection.
func (c *Client) ExpectRejected(code int) *http.Response {
	c.T.Helper()
	resp := c.ReadResponse()
	if resp.StatusCode != code {
		c.T.Fatalf("status %d, want %d", resp.StatusCode, code)
	}
	if code == http.StatusUpgradeRequired && resp.Header.Get("Sec-WebSocket-Version") != "13" {
		c.T.Fatalf("426 without Sec-WebSocket-Version: %v", resp.Header)
	}
	c.ExpectEOF(Timeout)
	return resp
}
