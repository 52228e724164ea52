// Package refhub is the reference the benchmarks compare wshub against:
// the classic goroutine-per-connection hub (gorilla/websocket's chat
// example pattern) speaking PROTOCOL.md. Each connection has a read pump
// and a write pump goroutine and a 256-slot send channel; one hub
// goroutine owns every subscription and every send channel, fed by
// register, unregister and command channels. It is deliberately the
// textbook design, not an optimised one.
package refhub

import (
	"encoding/json"
	"strconv"
)

// SendQueue is each client's send channel capacity.
const SendQueue = 256

// Hub owns the clients, the channel subscriptions and the send channels.
type Hub struct {
	register   chan *client
	unregister chan *client
	cmds       chan command
	quit       chan struct{}

	clients  map[*client]struct{}
	channels map[string]map[*client]struct{}
}

// command is one request for the hub goroutine.
type command struct {
	kind    string // "subscribe", "unsubscribe", "publish", "reply"
	c       *client
	channel string
	id      int64 // -1 when absent
	frame   []byte
}

// New returns a hub; start it with Run.
func New() *Hub {
	return &Hub{
		register:   make(chan *client),
		unregister: make(chan *client),
		cmds:       make(chan command, 1024),
		quit:       make(chan struct{}),
		clients:    map[*client]struct{}{},
		channels:   map[string]map[*client]struct{}{},
	}
}

// Stop ends Run.
func (h *Hub) Stop() { close(h.quit) }

// Run is the hub goroutine.
func (h *Hub) Run() {
	for {
		select {
		case <-h.quit:
			return
		case c := <-h.register:
			h.clients[c] = struct{}{}
		case c := <-h.unregister:
			h.drop(c)
		case cmd := <-h.cmds:
			h.handle(cmd)
		}
	}
}

func (h *Hub) handle(cmd command) {
	if cmd.c != nil {
		if _, ok := h.clients[cmd.c]; !ok {
			return // already dropped
		}
	}
	switch cmd.kind {
	case "subscribe":
		subs := h.channels[cmd.channel]
		if subs == nil {
			subs = map[*client]struct{}{}
			h.channels[cmd.channel] = subs
		}
		subs[cmd.c] = struct{}{}
		cmd.c.subs[cmd.channel] = struct{}{}
		h.ok(cmd.c, cmd.id)
	case "unsubscribe":
		if _, ok := cmd.c.subs[cmd.channel]; !ok {
			h.send(cmd.c, errorFrame(cmd.id, 404, "not subscribed to this channel"))
			return
		}
		h.leave(cmd.c, cmd.channel)
		h.ok(cmd.c, cmd.id)
	case "publish":
		for s := range h.channels[cmd.channel] {
			h.send(s, cmd.frame)
		}
		if cmd.c != nil {
			h.ok(cmd.c, cmd.id)
		}
	case "reply":
		h.send(cmd.c, cmd.frame)
	}
}

// send queues a frame without blocking; a full queue drops the client,
// the classic hub's slow-consumer rule.
func (h *Hub) send(c *client, frame []byte) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	select {
	case c.send <- frame:
	default:
		h.drop(c)
	}
}

func (h *Hub) ok(c *client, id int64) {
	if id >= 0 {
		h.send(c, []byte(`{"op":"ok","id":`+strconv.FormatInt(id, 10)+`}`))
	}
}

func (h *Hub) leave(c *client, channel string) {
	delete(c.subs, channel)
	if subs := h.channels[channel]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(h.channels, channel)
		}
	}
}

// drop forgets c and closes its send channel, which ends its write pump.
func (h *Hub) drop(c *client) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	for ch := range c.subs {
		h.leave(c, ch)
	}
	delete(h.clients, c)
	close(c.send)
}

// messageFrame is the message a publication becomes, built once.
func messageFrame(channel string, data json.RawMessage) []byte {
	name, _ := json.Marshal(channel)
	b := make([]byte, 0, len(name)+len(data)+32)
	b = append(b, `{"op":"message","channel":`...)
	b = append(b, name...)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

func errorFrame(id int64, code int, msg string) []byte {
	m, _ := json.Marshal(msg)
	s := `{"op":"error",`
	if id >= 0 {
		s += `"id":` + strconv.FormatInt(id, 10) + `,`
	}
	return []byte(s + `"code":` + strconv.Itoa(code) + `,"message":` + string(m) + `}`)
}
