package history

import (
	"math/rand/v2"
	"strconv"
)

// RandomEpochs returns an epoch source for a Store: every call returns a
// new epoch, a random prefix drawn once (so epochs differ from one process
// start to the next) and a counter (so a recreated stream never gets its
// previous epoch back). Not safe for concurrent use; the store's owner
// guards it with the store.
func RandomEpochs() func() string {
	prefix := strconv.FormatUint(rand.Uint64()>>16|1<<47, 36) // a fixed 10 digits
	var n uint64
	return func() string {
		n++
		return prefix + "-" + strconv.FormatUint(n, 36)
	}
}
