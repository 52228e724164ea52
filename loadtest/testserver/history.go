package testserver

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"
)

// ReplayFault is damage a History server does to every recovery's replay
// on purpose.
type ReplayFault int

const (
	ReplayExact   ReplayFault = iota // what PROTOCOL.md says: since+1 to the latest, in order
	ReplayOverlap                    // from since itself: one duplicate per recovery
	ReplayGap                        // without since+1: one loss per recovery (still "recovered":true)
	ReplayShort                      // without the latest: a replay never finishes (live ones would finish it)
)

// History is a minimal PROTOCOL.md server in which every channel keeps
// history (the wshub extension the recover scenario drives): offsets from
// 1, one epoch, the last Size publications. Everything, fan-out and
// writes, runs under one lock, so the order a subscriber sees is exactly
// the order of the stream: ok, replay, live.
type History struct {
	size  int
	fault ReplayFault

	mu      sync.Mutex
	streams map[string]*stream
	subs    map[string]map[*websocket.Conn]bool
	damaged int64 // recoveries the fault changed
}

type stream struct {
	last int64
	kept [][]byte // the data of offsets last-len(kept)+1 .. last
}

// NewHistory returns a server keeping size publications per channel.
func NewHistory(size int, fault ReplayFault) *History {
	return &History{size: size, fault: fault, streams: map[string]*stream{}, subs: map[string]map[*websocket.Conn]bool{}}
}

// Damaged is how many recoveries the fault changed (one message each).
func (h *History) Damaged() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.damaged
}

// ServeHTTP upgrades any path.
func (h *History) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	go h.serve(c)
}

const historyEpoch = "ep1"

func (h *History) serve(c *websocket.Conn) {
	var mine []string
	defer func() {
		h.mu.Lock()
		for _, ch := range mine {
			delete(h.subs[ch], c)
		}
		h.mu.Unlock()
		c.Close()
	}()
	for {
		in, ok := readCommand(c)
		if !ok {
			return
		}
		h.mu.Lock()
		st := h.streams[in.Channel]
		if st == nil {
			st = &stream{}
			h.streams[in.Channel] = st
		}
		switch in.Op {
		case "subscribe":
			h.subscribe(c, in.Channel, st, in.ID, in.Since, in.Epoch)
			mine = append(mine, in.Channel)
		case "publish":
			st.last++
			st.kept = append(st.kept, in.Data)
			if len(st.kept) > h.size {
				st.kept = st.kept[1:]
			}
			frame := message(in.Channel, st.last, in.Data)
			for s := range h.subs[in.Channel] {
				_ = s.WriteMessage(websocket.TextMessage, frame)
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"op":"ok","id":`+strconv.FormatInt(in.ID, 10)+`}`))
		}
		h.mu.Unlock()
	}
}

// subscribe answers a subscribe (under h.mu): the ok, then the replay.
func (h *History) subscribe(c *websocket.Conn, ch string, st *stream, id int64, since *int64, epoch string) {
	if h.subs[ch] == nil {
		h.subs[ch] = map[*websocket.Conn]bool{}
	}
	h.subs[ch][c] = true
	ok := `{"op":"ok","id":` + strconv.FormatInt(id, 10) + `,"offset":` + strconv.FormatInt(st.last, 10) + `,"epoch":"` + historyEpoch + `"`
	oldest := st.last - int64(len(st.kept)) + 1 // the oldest offset kept
	if since == nil {
		_ = c.WriteMessage(websocket.TextMessage, []byte(ok+`}`))
		return
	}
	from := *since + 1
	if epoch != historyEpoch || from < oldest && from <= st.last {
		_ = c.WriteMessage(websocket.TextMessage, []byte(ok+`,"recovered":false}`))
		return
	}
	switch {
	case from > st.last:
	case h.fault == ReplayOverlap && from > oldest:
		from--
		h.damaged++
	case h.fault == ReplayGap:
		from++
		h.damaged++
	}
	n := max(0, st.last-from+1)
	to := st.last
	if h.fault == ReplayShort && n > 0 {
		to--
		h.damaged++
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte(ok+`,"recovered":true,"replayed":`+strconv.FormatInt(n, 10)+`}`))
	for o := from; o <= to; o++ {
		_ = c.WriteMessage(websocket.TextMessage, message(ch, o, st.kept[o-oldest]))
	}
}

func message(ch string, offset int64, data []byte) []byte {
	return []byte(`{"op":"message","channel":"` + ch + `","offset":` + strconv.FormatInt(offset, 10) + `,"data":` + string(data) + `}`)
}
