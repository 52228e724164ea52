package redis

import (
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// Cluster slots (https://redis.io/docs/reference/cluster-spec/#key-distribution-model).

const numSlots = 16384

// slotMap is the master address of every cluster slot ("" when unknown).
type slotMap [numSlots]string

// parseSlots reads a CLUSTER SLOTS answer. An entry without a host means
// "the node that answered"; fallbackHost (a seed's) stands in for it.
func parseSlots(res rueidis.RedisResult, fallbackHost string) (*slotMap, error) {
	entries, err := res.ToArray()
	if err != nil {
		return nil, err
	}
	m := new(slotMap)
	for _, e := range entries {
		v, err := e.ToArray()
		if err != nil || len(v) < 3 {
			return nil, errors.New("redis: malformed CLUSTER SLOTS entry")
		}
		start, err1 := v[0].AsInt64()
		end, err2 := v[1].AsInt64()
		node, err3 := v[2].ToArray()
		if err := errors.Join(err1, err2, err3); err != nil || len(node) < 2 || start < 0 || end >= numSlots || start > end {
			return nil, errors.New("redis: malformed CLUSTER SLOTS entry")
		}
		host, _ := node[0].ToString()
		port, _ := node[1].AsInt64()
		if host == "" {
			host = fallbackHost
		}
		addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		for i := start; i <= end; i++ {
			m[i] = addr
		}
	}
	return m, nil
}

var crcTable [256]uint16

func init() {
	for i := range crcTable {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		crcTable[i] = crc
	}
}

// crc16 is CRC-16/XMODEM, the cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

// slotOf is the cluster slot of a key or shard channel, honouring {hash tags}.
func slotOf(key string) uint16 {
	for s := 0; s < len(key); s++ {
		if key[s] != '{' {
			continue
		}
		for e := s + 1; e < len(key); e++ {
			if key[e] == '}' {
				if e > s+1 {
					key = key[s+1 : e]
				}
				return crc16(key) & (numSlots - 1)
			}
		}
		break
	}
	return crc16(key) & (numSlots - 1)
}

// tagForSlot finds a short hash tag that lands in slot (about 16k tries).
func tagForSlot(slot uint16) string {
	for i := 0; ; i++ {
		t := strconv.Itoa(i)
		if crc16(t)&(numSlots-1) == slot {
			return t
		}
	}
}

// groupBySlot splits channels by cluster slot, keeping their order.
func groupBySlot(chs []string) [][]string {
	if len(chs) == 0 {
		return nil
	}
	idx := make(map[uint16]int)
	var out [][]string
	for _, ch := range chs {
		sl := slotOf(ch)
		i, ok := idx[sl]
		if !ok {
			i = len(out)
			idx[sl] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], ch)
	}
	return out
}

// chanTag is a channel's keys' hash tag part. Valid channel names have no
// braces, so "{<channel>}" makes the whole name the hash tag: the keys hash
// exactly as the channel does. A name with a brace (only a direct caller can
// pass one) may have its own tag or none, and may hold a '}' that would end
// ours early, so it gets a tag chosen for the channel's slot, followed by
// the name itself to keep it unique. The two forms cannot collide: the first
// has exactly one brace pair, the second more braces.
func chanTag(channel string) string {
	if strings.ContainsAny(channel, "{}") {
		return "{" + tagForSlot(slotOf(channel)) + "}" + channel
	}
	return "{" + channel + "}"
}
