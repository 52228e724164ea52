package refhub

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// Timings and limits of gorilla's chat example, with PROTOCOL.md's
// message limit.
const (
	writeWait      = 10 * time.Second
	pongWait       = 60 * time.Second
	pingPeriod     = pongWait * 9 / 10
	maxMessageSize = 64 << 10
	maxPublishData = 64 << 10
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	CheckOrigin:     func(*http.Request) bool { return true },
	Subprotocols:    []string{"wshub.v1"},
}

// client is one connection: a read pump and a write pump goroutine.
type client struct {
	hub  *Hub
	conn *websocket.Conn
	send chan []byte
	subs map[string]struct{} // owned by the hub goroutine
}

// Handler serves WebSocket upgrades on /ws and 404 elsewhere.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", h.serveWS)
	return mux
}

func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade already answered with an HTTP error
	}
	c := &client{hub: h, conn: conn, send: make(chan []byte, SendQueue), subs: map[string]struct{}{}}
	select {
	case h.register <- c:
	case <-h.quit:
		conn.Close()
		return
	}
	go c.writePump()
	go c.readPump()
}

// inbound is a client command as PROTOCOL.md defines it.
type inbound struct {
	Op      *string          `json:"op"`
	Channel *string          `json:"channel"`
	ID      *json.Number     `json:"id"`
	Data    *json.RawMessage `json:"data"`
}

func (c *client) readPump() {
	defer func() {
		select {
		case c.hub.unregister <- c:
		case <-c.hub.quit:
		}
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		typ, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if typ != websocket.TextMessage {
			_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1003, "text only"), time.Now().Add(writeWait))
			return
		}
		cmd, ok := c.parse(msg)
		if !ok {
			continue
		}
		select {
		case c.hub.cmds <- cmd:
		case <-c.hub.quit:
			return
		}
	}
}

// parse validates one command; a bad one is answered with an error.
func (c *client) parse(msg []byte) (command, bool) {
	var in inbound
	id := int64(-1)
	fail := func(code int, text string) (command, bool) {
		c.reply(errorFrame(id, code, text))
		return command{}, false
	}
	d := json.NewDecoder(bytes.NewReader(msg))
	d.UseNumber()
	if err := d.Decode(&in); err != nil {
		return fail(400, "malformed JSON")
	}
	if in.ID != nil {
		n, err := in.ID.Int64()
		if err != nil || n < 0 {
			return fail(400, "id must be a non-negative integer")
		}
		id = n
	}
	if in.Op == nil {
		return fail(400, "missing op")
	}
	cmd := command{kind: *in.Op, c: c, id: id}
	switch *in.Op {
	case "ping":
		frame := []byte(`{"op":"pong"}`)
		if id >= 0 {
			frame = []byte(`{"op":"pong","id":` + in.ID.String() + `}`)
		}
		return command{kind: "reply", c: c, frame: frame}, true
	case "subscribe", "unsubscribe", "publish":
	default:
		return fail(400, "unknown op")
	}
	if in.Channel == nil {
		return fail(400, "missing channel")
	}
	if !validChannel(*in.Channel) {
		return fail(422, "invalid channel name")
	}
	cmd.channel = *in.Channel
	if cmd.kind == "publish" {
		if in.Data == nil {
			return fail(400, "missing data")
		}
		if len(*in.Data) > maxPublishData {
			return fail(413, "data too large")
		}
		cmd.frame = messageFrame(cmd.channel, *in.Data)
	}
	return cmd, true
}

// reply sends a frame through the hub, the only writer of c.send.
func (c *client) reply(frame []byte) {
	select {
	case c.hub.cmds <- command{kind: "reply", c: c, frame: frame}:
	case <-c.hub.quit:
	}
}

func (c *client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case msg, ok := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				// The hub dropped us: its queue overflowed.
				_ = c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1008, "slow consumer"))
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ticker.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// validChannel applies PROTOCOL.md's channel name rule.
func validChannel(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case b == '_' || b == '-' || b == '.' || b == ':' || b == '@' || b == '/' || b == '=':
		default:
			return false
		}
	}
	return true
}
