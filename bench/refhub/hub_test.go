package refhub

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func start(t *testing.T) (ws, admin string) {
	h := New()
	go h.Run()
	s := httptest.NewServer(h.Handler())
	a := httptest.NewServer(h.AdminHandler())
	t.Cleanup(func() { s.CloseClientConnections(); s.Close(); a.Close(); h.Stop() })
	return "ws" + strings.TrimPrefix(s.URL, "http") + "/ws", a.URL
}

func dial(t *testing.T, url string) *websocket.Conn {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func exchange(t *testing.T, c *websocket.Conn, send, want string) {
	t.Helper()
	if send != "" {
		if err := c.WriteMessage(websocket.TextMessage, []byte(send)); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("after %s: %v", send, err)
	}
	if string(got) != want {
		t.Fatalf("after %s: got %s, want %s", send, got, want)
	}
}

// TestProtocol walks PROTOCOL.md's example exchange and error codes.
func TestProtocol(t *testing.T) {
	url, admin := start(t)
	a, b := dial(t, url), dial(t, url)
	exchange(t, a, `{"op":"subscribe","channel":"room:42","id":1}`, `{"op":"ok","id":1}`)
	exchange(t, b, `{"op":"publish","channel":"room:42","data":{"text":"hi"},"id":2}`, `{"op":"ok","id":2}`)
	exchange(t, a, "", `{"op":"message","channel":"room:42","data":{"text":"hi"}}`)
	exchange(t, b, `{"op":"ping","id":3}`, `{"op":"pong","id":3}`)
	exchange(t, b, `{"op":"unsubscribe","channel":"room:42","id":4}`, `{"op":"error","id":4,"code":404,"message":"not subscribed to this channel"}`)
	exchange(t, b, `{"op":"subscribe","channel":"bad name","id":5}`, `{"op":"error","id":5,"code":422,"message":"invalid channel name"}`)
	exchange(t, b, `{"op":"dance","id":6}`, `{"op":"error","id":6,"code":400,"message":"unknown op"}`)
	exchange(t, b, `not json`, `{"op":"error","code":400,"message":"malformed JSON"}`)
	resp, err := http.Post(admin+"/api/publish", "application/json", strings.NewReader(`{"channel":"room:42","data":"from the backend"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin publish: %v %v", err, resp)
	}
	resp.Body.Close()
	exchange(t, a, "", `{"op":"message","channel":"room:42","data":"from the backend"}`)
	exchange(t, a, `{"op":"unsubscribe","channel":"room:42","id":7}`, `{"op":"ok","id":7}`)
	resp, _ = http.Post(admin+"/api/publish", "application/json", strings.NewReader(`{"channel":"room:42"}`))
	if resp.StatusCode != 400 {
		t.Fatalf("publish without data: %d", resp.StatusCode)
	}
	resp.Body.Close()
}
