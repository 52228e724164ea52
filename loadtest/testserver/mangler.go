// Package testserver holds small PROTOCOL.md servers that misbehave on
// purpose, for testing that the load generator notices.
package testserver

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// mangler is a minimal PROTOCOL.md server (subscribe, publish with ok) whose fan-out drops, duplicates
// and reorders on purpose: per channel, publication n is dropped when
// n%drop == 0, held back and sent after the next one when n%swap == 0,
// and otherwise sent twice when n%dup == 0.
type mangler struct {
	drop, dup, swap int

	mu   sync.Mutex // serialises fan-out and every write
	subs map[string][]*websocket.Conn
	n    map[string]int
	held map[string][]byte
}

// StartMangler serves a mangler on a free loopback port (any path) and
// returns its host:port and a function that stops it. A zero rate turns
// that kind of damage off.
func StartMangler(drop, dup, swap int) (addr string, stop func()) {
	m := &mangler{drop: drop, dup: dup, swap: swap, subs: map[string][]*websocket.Conn{}, n: map[string]int{}, held: map[string][]byte{}}
	up := websocket.Upgrader{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		go m.serve(c)
	}))
	return strings.TrimPrefix(s.URL, "http://"), func() { s.CloseClientConnections(); s.Close() }
}

func (m *mangler) serve(c *websocket.Conn) {
	defer c.Close()
	for {
		in, ok := readCommand(c)
		if !ok {
			return
		}
		m.mu.Lock()
		switch in.Op {
		case "subscribe":
			m.subs[in.Channel] = append(m.subs[in.Channel], c)
		case "publish":
			m.fanout(in.Channel, []byte(`{"op":"message","channel":"`+in.Channel+`","data":`+string(in.Data)+`}`))
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"op":"ok","id":`+strconv.FormatInt(in.ID, 10)+`}`))
		m.mu.Unlock()
	}
}

func (m *mangler) fanout(ch string, frame []byte) {
	m.n[ch]++
	n := m.n[ch]
	held := m.held[ch]
	delete(m.held, ch)
	switch {
	case every(n, m.drop):
	case every(n, m.swap):
		m.held[ch] = frame
	default:
		m.send(ch, frame)
		if every(n, m.dup) {
			m.send(ch, frame)
		}
	}
	if held != nil {
		m.send(ch, held)
	}
}

func (m *mangler) send(ch string, frame []byte) {
	for _, s := range m.subs[ch] {
		_ = s.WriteMessage(websocket.TextMessage, frame)
	}
}

func every(n, k int) bool { return k > 0 && n%k == 0 }
