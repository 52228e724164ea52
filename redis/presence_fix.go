package redis

import (
	"context"
	"strconv"

	"github.com/redis/rueidis"
)

// presFixScript removes instances that are known dead from a channel's set,
// deletes their keys and rebuilds the user counts from the users sets of the
// instances that remain; it returns the number of distinct users.
//
// The counts (ws:presn) hold, per user, how many instances of the set have a
// member of that user, so that Stats is a ZCOUNT and not a union of every
// instance's users. Live instances keep them exact with ZINCRBY in the same
// transaction as their users set's SADD or SREM. A dead instance cannot take
// its share back, and its keys may expire before anyone notices, so its
// share is not subtracted: the counts are recomputed from the instances
// left, once per death (a second caller with the same dead finds them gone
// from the set and skips the rebuild) or when forced (an instance rewrote
// its keys after Redis lost some). O(users of the channel), atomically on
// the channel's slot.
//
// KEYS[1] ws:pres:<tag>, KEYS[2] ws:presn:<tag>; ARGV[1] tag, ARGV[2] the
// TTL in ms, ARGV[3] "1" to rebuild even when no instance was removed,
// ARGV[4...] the dead instances.
var presFixScript = rueidis.NewLuaScript(`
local insts, counts, tag = KEYS[1], KEYS[2], ARGV[1]
local removed = ARGV[3] == '1'
for i = 4, #ARGV do
  if redis.call('SREM', insts, ARGV[i]) == 1 then
    redis.call('DEL', '` + presConnPrefix + `' .. ARGV[i] .. ':' .. tag, '` + presUserPrefix + `' .. ARGV[i] .. ':' .. tag)
    removed = true
  end
end
if removed then
  redis.call('DEL', counts)
  for _, inst in ipairs(redis.call('SMEMBERS', insts)) do
    for _, user in ipairs(redis.call('SMEMBERS', '` + presUserPrefix + `' .. inst .. ':' .. tag)) do
      redis.call('ZINCRBY', counts, 1, user)
    end
  end
  if redis.call('EXISTS', counts) == 1 then
    redis.call('PEXPIRE', counts, ARGV[2])
  end
end
return redis.call('ZCOUNT', counts, 1, '+inf')
`)

// presFix runs presFixScript for channel keys k (any instance's: only the
// shared keys and the tag are used) and returns the distinct users.
func presFix(ctx context.Context, c rueidis.Client, k presKeys, ttlMS int64, force bool, dead []string) (int64, error) {
	args := make([]string, 0, 3+len(dead))
	f := "0"
	if force {
		f = "1"
	}
	args = append(args, k.tag, strconv.FormatInt(ttlMS, 10), f)
	args = append(args, dead...)
	return presFixScript.Exec(ctx, c, []string{k.insts, k.count}, args).AsInt64()
}
