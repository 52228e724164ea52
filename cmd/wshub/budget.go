package main

import "github.com/wshub/wshub/redis"

// processFDs is the descriptors the process may open besides the event loops,
// the admin listener and Redis: DNS look-ups while dialing Redis, /proc reads
// at start, a margin.
const processFDs = 16

// reservedFDs is what the event loops' descriptor budget leaves aside for the
// rest of the gateway (eventloop.Config.ReservedFDs): each part that opens
// descriptors states its most, and connections get the remainder, so that a
// connect burst can never make accept fail with EMFILE.
func (c *config) reservedFDs() int {
	n := processFDs + adminFDs(c)
	if c.redisEnabled() {
		n += redis.Config{URL: c.Redis, ClusterAddrs: c.clusterAddrs()}.Descriptors()
	}
	return n
}
