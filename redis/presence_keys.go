package redis

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/wshub/wshub/hub/presence"
)

// Presence key names and member values (see the package doc).

const (
	presInstPrefix  = "ws:pres:"  // + tag: set of instances with members
	presConnPrefix  = "ws:presc:" // + instance + ":" + tag: hash conn -> member
	presUserPrefix  = "ws:presu:" // + instance + ":" + tag: set of users
	presCountPrefix = "ws:presn:" // + tag: zset user -> instances holding it
)

// presKeys are the keys of one channel: the shared ones, and this
// instance's. The instance id comes before the tag: it has no '{', so the
// first brace still starts the tag.
type presKeys struct {
	tag          string // chanTag
	insts, count string // shared: ws:pres:<tag>, ws:presn:<tag>
	conns, users string // this instance's: ws:presc:<inst>:<tag>, ws:presu:<inst>:<tag>
}

func newPresKeys(instance, channel string) presKeys {
	tag := chanTag(channel)
	return presKeys{
		tag:   tag,
		insts: presInstPrefix + tag,
		count: presCountPrefix + tag,
		conns: presConnKey(instance, tag),
		users: presUserPrefix + instance + ":" + tag,
	}
}

func presConnKey(instance, tag string) string { return presConnPrefix + instance + ":" + tag }

// appendMember encodes a member's value, "<len(user)>:<user><info>": no
// escaping to write nor JSON to parse when 10,000 members are read.
func appendMember(b []byte, user string, info json.RawMessage) []byte {
	b = strconv.AppendInt(b, int64(len(user)), 10)
	b = append(b, ':')
	b = append(b, user...)
	return append(b, info...)
}

// parseMember decodes a value of appendMember for connection conn.
func parseMember(conn, v string) (presence.Member, bool) {
	n, rest, ok := strings.Cut(v, ":")
	l, err := strconv.Atoi(n)
	if !ok || err != nil || l < 0 || l > len(rest) {
		return presence.Member{}, false
	}
	m := presence.Member{Conn: conn, User: rest[:l]}
	if info := rest[l:]; info != "" {
		m.Info = json.RawMessage(info)
	}
	return m, true
}
