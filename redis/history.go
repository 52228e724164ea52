package redis

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub/history"
)

// History streams (see the package doc): a channel's stream is a Redis
// Stream whose entry ids are "<offset>-0", its meta a hash {o: latest offset,
// e: epoch, s: history_size}. One script appends and publishes, another
// reads; both keys and the (S)PUBLISH channel share one cluster slot.

const (
	histStreamPrefix = "ws:hist:"
	histMetaPrefix   = "ws:hmeta:"
	// histMark starts the pub/sub payload of a history publication. No JSON
	// text starts with '!' (only whitespace or a value may), so plain
	// publications, whose payload is the data itself, never do.
	histMark = '!'
)

// histKeys names channel's stream and meta. Valid channel names have no
// braces, so "{<channel>}" makes the whole name the hash tag: the keys hash
// exactly as the channel does. A name with a brace (no hub channel; only a
// direct caller can pass one) may have its own tag or none, and may hold a
// '}' that would end ours early, so its keys take a tag chosen for the
// channel's slot, followed by the name itself to keep them unique. The two
// forms cannot collide: the first has exactly one brace pair, the second
// more braces.
func histKeys(channel string) (stream, meta string) {
	tag := chanTag(channel)
	return histStreamPrefix + tag, histMetaPrefix + tag
}

// script is a Lua script sent as EVALSHA inside the publish workers'
// pipelines, and as EVAL for those Redis answers NOSCRIPT (it restarted, or a
// cluster node never ran it). rueidis.Lua does the same fallback, but one
// round trip per call (Exec) or with a SCRIPT LOAD on every node per batch
// (ExecMulti).
type script struct {
	src, sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

// command is EVALSHA, or EVAL when eval, of the script on a channel's keys.
func (sc *script) command(b rueidis.Builder, eval bool, channel string, args ...string) rueidis.Completed {
	stream, meta := histKeys(channel)
	if eval {
		return b.Eval().Script(sc.src).Numkeys(2).Key(stream, meta).Arg(args...).Build()
	}
	return b.Evalsha().Sha1(sc.sha).Numkeys(2).Key(stream, meta).Arg(args...).Build()
}

// isNoScript reports whether Redis did not know the script's sha.
func isNoScript(err error) bool {
	rerr, ok := rueidis.IsRedisErr(err)
	return ok && rerr.IsNoScript()
}

// appendScript assigns the next offset, appends data, refreshes both keys'
// TTL and publishes, atomically: no publication can come between the offset
// and the PUBLISH, so every subscriber sees offsets in order. A missing
// meta, or a meta without its stream, means the past was lost (first
// publication, expiry, eviction, a restart without persistence): the stream
// is reset and a new epoch starts at offset 1. So does an offset beyond
// history.MaxOffset, and an append Redis refuses (a stream whose ids ran
// ahead of its meta: no offset is ever reused under an epoch). The epoch is
// the server's time in microseconds plus the publishing instance's nonce.
//
// Trimming is approximate (MAXLEN ~): Redis then drops whole nodes of the
// stream (up to 100 entries or 4 KB), where an exact MAXLEN rewrites the
// oldest node on every append, which made the script twice as slow
// (BenchmarkPublishHistory). The stream may so hold up to a node more than
// history_size entries; the size kept in the meta lets readScript return
// the newest history_size only, so that what a client may recover is
// exactly what history_size says.
//
// KEYS: stream, meta. ARGV: channel, data, size, ttl ms ("0": none), nonce,
// publish command. Answer: {offset, epoch}.
var appendScript = newScript(`
local m = redis.call('HMGET', KEYS[2], 'e', 's')
local epoch, id = m[1], nil
if epoch then
	local off = redis.call('HINCRBY', KEYS[2], 'o', 1)
	if off <= ` + strconv.FormatUint(history.MaxOffset, 10) + ` then
		id = string.format('%d', off)
		-- Not made when missing: the past was lost with it.
		local r = redis.pcall('XADD', KEYS[1], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[3], id .. '-0', 'd', ARGV[2])
		if type(r) ~= 'string' then
			id = nil
		end
	end
end
if id then
	if m[2] ~= ARGV[3] then
		redis.call('HSET', KEYS[2], 's', ARGV[3])
	end
else
	local t = redis.call('TIME')
	local n, s = t[1] * 1000000 + t[2], ''
	repeat
		local d = n % 36
		s = string.sub('0123456789abcdefghijklmnopqrstuvwxyz', d + 1, d + 1) .. s
		n = math.floor(n / 36)
	until n == 0
	epoch, id = s .. '.' .. ARGV[5], '1'
	redis.call('DEL', KEYS[1])
	redis.call('HSET', KEYS[2], 'o', 1, 'e', epoch, 's', ARGV[3])
	redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '1-0', 'd', ARGV[2])
end
if ARGV[4] == '0' then
	redis.call('PERSIST', KEYS[1])
	redis.call('PERSIST', KEYS[2])
else
	redis.call('PEXPIRE', KEYS[1], ARGV[4])
	redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call(ARGV[6], ARGV[1], '!' .. id .. ':' .. epoch .. ':' .. ARGV[2])
return {id, epoch}
`)

// readScript reads the position and the entries after since, of the newest
// history_size, in one atomic step. A stream without its meta, or a meta
// without its stream, reads as no stream: offset 0, epoch "" (nothing is
// created by a read).
//
// KEYS: stream, meta. ARGV: since, limit ("0": the position only). Answer:
// {offset, epoch[, entries]}, entries as XRANGE gives them.
var readScript = newScript(`
local m = redis.call('HMGET', KEYS[2], 'o', 'e', 's')
if not m[1] or not m[2] or redis.call('EXISTS', KEYS[1]) == 0 then
	return {0, ''}
end
local top = tonumber(m[1])
if ARGV[2] == '0' or tonumber(ARGV[1]) >= top then
	return {m[1], m[2]}
end
local from = math.max(tonumber(ARGV[1]), top - (tonumber(m[3]) or top))
return {m[1], m[2], redis.call('XRANGE', KEYS[1], '(' .. string.format('%d', from) .. '-0', '+', 'COUNT', ARGV[2])}
`)

var errHistAnswer = errors.New("redis: malformed history answer")

// parsePosition reads the {offset, epoch} both scripts answer with.
func parsePosition(v []rueidis.RedisMessage) (history.Position, error) {
	if len(v) < 2 {
		return history.Position{}, errHistAnswer
	}
	off, err1 := v[0].AsUint64()
	epoch, err2 := v[1].ToString()
	if err1 != nil || err2 != nil {
		return history.Position{}, errHistAnswer
	}
	return history.Position{Offset: off, Epoch: epoch}, nil
}

// parseRead reads readScript's answer. The entries' Data view the answer's
// strings, which nothing else holds: no copy.
func parseRead(res rueidis.RedisResult) (history.Read, error) {
	v, err := res.ToArray()
	if err != nil {
		return history.Read{}, err
	}
	pos, err := parsePosition(v)
	if err != nil || len(v) < 3 {
		return history.Read{Pos: pos}, err
	}
	raw, err := v[2].ToArray()
	if err != nil {
		return history.Read{}, errHistAnswer
	}
	rd := history.Read{Pos: pos, Entries: make([]history.Entry, len(raw))}
	for i := range raw {
		e, err := raw[i].ToArray()
		if err != nil || len(e) != 2 {
			return history.Read{}, errHistAnswer
		}
		id, err1 := e[0].ToString()
		kv, err2 := e[1].ToArray()
		if err1 != nil || err2 != nil || len(kv) != 2 {
			return history.Read{}, errHistAnswer
		}
		ms, _, _ := strings.Cut(id, "-")
		off, err1 := strconv.ParseUint(ms, 10, 64)
		data, err2 := kv[1].ToString()
		if err1 != nil || err2 != nil {
			return history.Read{}, errHistAnswer
		}
		rd.Entries[i] = history.Entry{Offset: off, Data: stringBytes(data)}
	}
	return rd, nil
}

// parseHistMessage decodes the pub/sub payload appendScript publishes:
// "!<offset>:<epoch>:<data>". ok is false for anything else.
func parseHistMessage(msg string) (pos history.Position, data []byte, ok bool) {
	if len(msg) == 0 || msg[0] != histMark {
		return pos, nil, false
	}
	num, rest, ok1 := strings.Cut(msg[1:], ":")
	epoch, body, ok2 := strings.Cut(rest, ":")
	off, err := strconv.ParseUint(num, 10, 64)
	if !ok1 || !ok2 || err != nil || off == 0 || off > history.MaxOffset || epoch == "" {
		return pos, nil, false
	}
	return history.Position{Offset: off, Epoch: epoch}, stringBytes(body), true
}
