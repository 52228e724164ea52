package redis

// Redis names of the broker and the registry (see the package doc).

// Prefixes of internal channels; the broker refuses client subscriptions to
// them (a client name may hold one '#': doc.go).
const (
	internalPrefix = "ws#"
	instPrefix     = "ws#inst:"
	probePrefix    = "ws#probe:"
)

// probeChannel names a probe channel of instance in the slot of hash tag tag.
func probeChannel(instance, tag string) string { return probePrefix + instance + ":{" + tag + "}" }

// connPrefix starts a registry entry's key; the writer appends ids to it.
const connPrefix = "ws:conn:"

func connKey(id string) string            { return connPrefix + id }
func userKey(u string) string             { return "ws:user:" + u }
func instKey(id string) string            { return "ws:instance:" + id }
func userMember(inst, conn string) string { return inst + "|" + conn }

const instancesKey = "ws:instances"
