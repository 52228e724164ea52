package redis

import (
	"strconv"

	"github.com/redis/rueidis"
)

// Writing entries in chunks. The arguments of a chunk's commands (keys,
// members, connected_at) are built in one buffer and made one string, sliced
// for each command, instead of four small strings per connection: in a
// connection storm those small strings are garbage among the connections'
// own long-lived objects, which then end up spread over spans the runtime
// cannot give back (idle RSS per connection is the gateway's bar, 1 KiB).
// A chunk's string is one larger object, freed whole.

// addChunk is the entries of one chunk, written together (see pipe.addEntry).
type addChunk struct {
	entries []*regEntry // valid until the chunk is written (no add or remove meanwhile)
	text    []byte      // the chunk's arguments, back to back
	ends    []int       // end offset in text of each argument, addArgs per entry
}

// Arguments per entry in addChunk.text: ws:conn:<id>, connected_at,
// ws:user:<user>, <instance>|<id> (the last two empty without a user).
const addArgs = 4

// addEntry queues e's commands (the hash, its TTL, the user's set and its
// TTL); they go out with the chunk, in queue order, and before anything the
// pipe sends after the chunk fills or at finish.
func (p *pipe) addEntry(e *regEntry) {
	r := p.r
	c := &r.adds
	c.entries = append(c.entries, e)
	mark := func() { c.ends = append(c.ends, len(c.text)) }
	idAt := len(c.text) + len("ws:conn:")
	c.text = r.keys.appendID(append(c.text, "ws:conn:"...), e.key)
	id := c.text[idAt:]
	mark()
	c.text = strconv.AppendInt(c.text, e.connectedAt(), 10)
	mark()
	if e.user != "" {
		c.text = append(append(c.text, "ws:user:"...), e.user...)
		mark()
		c.text = append(append(append(c.text, r.id...), '|'), id...)
	} else {
		mark()
	}
	mark()
	// A chunk makes about one pipeline of commands.
	if len(c.entries) >= max(1, r.cfg.MaxPipeline/4) {
		p.writeAdds()
	}
}

// writeAdds adds the queued chunk's commands to the pipeline.
func (p *pipe) writeAdds() {
	r := p.r
	ch := &r.adds
	if len(ch.entries) == 0 {
		return
	}
	text := string(ch.text) // the chunk's one allocation
	c := r.client
	ttl := r.cfg.TTL.Milliseconds()
	start := 0
	arg := func(i int) string { s := text[start:ch.ends[i]]; start = ch.ends[i]; return s }
	for i, e := range ch.entries {
		key, at, uk, member := arg(addArgs*i), arg(addArgs*i+1), arg(addArgs*i+2), arg(addArgs*i+3)
		p.queue(c.B().Hset().Key(key).FieldValue().FieldValue("instance", r.id).FieldValue("user", e.user).
			FieldValue("connected_at", at).Build(),
			c.B().Pexpire().Key(key).Milliseconds(ttl).Build())
		if e.user != "" {
			p.queue(c.B().Sadd().Key(uk).Member(member).Build(),
				c.B().Pexpire().Key(uk).Milliseconds(ttl).Build())
		}
	}
	clear(ch.entries)
	ch.entries, ch.text, ch.ends = keep(ch.entries), ch.text[:0], ch.ends[:0]
}

// queue appends commands to the pipeline, sending it when full.
func (p *pipe) queue(cmds ...rueidis.Completed) {
	p.r.cmds = append(p.r.cmds, cmds...)
	if len(p.r.cmds) >= p.r.cfg.MaxPipeline {
		p.send()
	}
}
