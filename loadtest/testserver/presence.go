package testserver

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wshub/wshub/hub/auth"
)

// Presence is a minimal PROTOCOL.md server in which every channel has
// presence and join_leave (the wshub extension presence-churn drives):
// presence and presence_stats queries, joins and leaves to every
// subscriber, a leave held for the linger and dropped, with the join that
// cancels it, when the same user subscribes again within it. Users are
// the sub of a token verified against one HS secret. Everything runs
// under one lock.
type Presence struct {
	v      *auth.Verifier
	linger time.Duration

	mu    sync.Mutex
	chans map[string]map[*websocket.Conn]string // channel -> subscriber -> user
	held  map[string]map[string][]*time.Timer   // channel -> user -> held leaves
}

// NewPresence returns a presence server verifying tokens with secret and
// holding leaves for linger (0: sent at once).
func NewPresence(secret string, linger time.Duration) (*Presence, error) {
	v, err := auth.New(auth.Config{Secrets: [][]byte{[]byte(secret)}, RequireExp: true})
	if err != nil {
		return nil, err
	}
	return &Presence{v: v, linger: linger, chans: map[string]map[*websocket.Conn]string{}, held: map[string]map[string][]*time.Timer{}}, nil
}

// ServeHTTP verifies the token query parameter and upgrades.
func (s *Presence) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cl, err := s.v.Verify(r.URL.Query().Get("token"))
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	go s.serve(c, cl.Sub)
}

func (s *Presence) serve(c *websocket.Conn, user string) {
	var mine []string
	defer func() {
		s.mu.Lock()
		for _, ch := range mine {
			delete(s.chans[ch], c)
			s.leave(ch, user)
		}
		s.mu.Unlock()
		c.Close()
	}()
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		var in struct {
			Op      string `json:"op"`
			Channel string `json:"channel"`
			ID      int64  `json:"id"`
		}
		if json.Unmarshal(msg, &in) != nil {
			return
		}
		id := strconv.FormatInt(in.ID, 10)
		s.mu.Lock()
		subs := s.chans[in.Channel]
		switch in.Op {
		case "subscribe":
			if subs == nil {
				subs = map[*websocket.Conn]string{}
				s.chans[in.Channel] = subs
			}
			subs[c] = user
			mine = append(mine, in.Channel)
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"op":"ok","id":`+id+`}`))
			s.join(in.Channel, user)
		case "presence_stats":
			users := map[string]bool{}
			for _, u := range subs {
				users[u] = true
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"op":"ok","id":`+id+`,"conns":`+strconv.Itoa(len(subs))+`,"users":`+strconv.Itoa(len(users))+`}`))
		case "presence":
			var m []string
			for _, u := range subs {
				m = append(m, `{"conn":"x","user":"`+u+`"}`)
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"op":"ok","id":`+id+`,"members":[`+strings.Join(m, ",")+`]}`))
		}
		s.mu.Unlock()
	}
}

// join announces user's join of ch unless it cancels a held leave (under s.mu).
func (s *Presence) join(ch, user string) {
	if held := s.held[ch][user]; len(held) > 0 {
		// Still held under s.mu: a timer that fired meanwhile finds it
		// gone and sends nothing.
		held[0].Stop()
		s.held[ch][user] = held[1:]
		return
	}
	s.announce(ch, "join", user)
}

// leave announces user's leave of ch, or holds it for the linger (under s.mu).
func (s *Presence) leave(ch, user string) {
	if s.linger <= 0 {
		s.announce(ch, "leave", user)
		return
	}
	if s.held[ch] == nil {
		s.held[ch] = map[string][]*time.Timer{}
	}
	var t *time.Timer
	t = time.AfterFunc(s.linger, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		held := s.held[ch][user]
		for i, h := range held {
			if h == t {
				s.held[ch][user] = append(held[:i:i], held[i+1:]...)
				s.announce(ch, "leave", user)
				return
			}
		}
	})
	s.held[ch][user] = append(s.held[ch][user], t)
}

func (s *Presence) announce(ch, op, user string) {
	frame := []byte(`{"op":"` + op + `","channel":"` + ch + `","user":"` + user + `","conn":"x"}`)
	for sub := range s.chans[ch] {
		_ = sub.WriteMessage(websocket.TextMessage, frame)
	}
}
