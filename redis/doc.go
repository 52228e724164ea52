// Package redis is wshub's Redis backend: a hub.Broker on rueidis that shares
// one pub/sub connection per instance (one per shard on a Redis Cluster) among
// all event loops, survives Redis restarts, stalls and slot moves, keeps
// channel history in Redis Streams (a hub.Historian), plus a connection
// registry with fenced instance heartbeats and addressed sends, and a
// presence store fenced by the same heartbeats.
//
// # Wiring
//
//	b, err := redis.New(redis.Config{URL: "redis://127.0.0.1:6379", InstanceID: id,
//		Logger: log, Metrics: reg})          // or ClusterAddrs: []string{...};
//	                                        // errors.Is(err, ErrUnreachable): retry later
//	r, err := redis.NewRegistry(b, redis.RegistryConfig{HeartbeatInterval: hb, TTL: ttl})
//	p, err := redis.NewPresence(r, redis.PresenceConfig{})   // a hub.PresenceStore
//	h := hub.New(hub.Config{InstanceID: id, Registrar: r, Directory: r}, b, posters)
//	b.SetDirectHandler(func(conn string, data []byte) { h.SendDirect(conn, data) })
//	err = b.Start(h)                        // h is the hub.Sink
//	// /readyz: b.Ready(); the hub serves /api/send, /api/connections/{id} and
//	// /api/instances from r (a hub.Directory) and registers connections in r
//	// (a hub.Registrar, which hub.New attaches to its own record of them,
//	// hub.LocalConns: r walks it to renew and rewrite entries); shutdown:
//	// b.Close() (closes the presence store,
//	// then the registry, first: keys and entries deleted at once).
//	// cmd/wshub does exactly this (the presence store once the hub takes one).
//
// # Redis names
//
//	<channel>                 hub channels, verbatim (PUBLISH/SUBSCRIBE, or
//	                          SPUBLISH/SSUBSCRIBE on a cluster)
//	ws#inst:<instance>        the instance's own channel: liveness probes and
//	                          addressed sends for that instance
//	ws#probe:<instance>:{tag} cluster only: one probe channel per shard, the
//	                          tag chosen so that the shard owns its slot
//	ws:conn:<conn>            hash {instance, user, connected_at (unix ms; to
//	                          the second for the hub's connections)}, TTL
//	ws:user:<user>            set of "<instance>|<conn>", TTL
//	ws:instance:<instance>    heartbeat, JSON {"conns":n,"ts":unix ms}, short TTL
//	ws:instances              sorted set: instance -> heartbeat expiry (unix ms)
//	ws:hist:{<channel>}       history channel's stream: entry id <offset>-0,
//	                          field d = the data; trimmed with MAXLEN ~ size;
//	                          TTL history_ttl, renewed by every publication
//	ws:hmeta:{<channel>}      its meta: hash {o: latest offset, e: epoch,
//	                          s: history_size}, same TTL
//
// The braces make the channel name the keys' hash tag: on a cluster a
// channel's stream, meta and shard channel share one slot, so one script
// appends and SPUBLISHes (client channel names have no braces; see
// histKeys for a name that has).
//
//	ws:pres:{<channel>}       presence: set of the instances with members on
//	                          the channel, TTL
//	ws:presc:<instance>:{<channel>}  hash: that instance's members,
//	                          conn -> "<len(user)>:<user><info>", TTL
//	ws:presu:<instance>:{<channel>}  set: the users of those members, TTL
//	ws:presn:{<channel>}      sorted set: user -> how many instances of the
//	                          set have a member of that user (Stats: ZCOUNT
//	                          1 +inf), TTL
//
// The braces make the channel name the presence keys' hash tag: on a
// cluster one channel's keys share the channel's slot, so one transaction
// or script covers them (a name that has braces gets a tag for its slot:
// see chanTag). Every instance renews the TTLs of a channel's keys once per
// TTL/3 (PresenceConfig.TTL), in batches, not per member; members of an
// instance whose ws:instance key is gone are not answered, and the first
// query that sees one removes that instance from the channel's set and
// rebuilds the counts without it (presFixScript).
//
// Internal channels start with "ws#". A client channel name may hold one
// '#' (a user-limited channel, `dm:#alice,bob`), so the broker refuses
// subscriptions to that prefix itself; a client publish there carries a
// JSON value, which no envelope type starts with, and is dropped.
//
// # Instance channel envelope
//
// Every payload on ws#inst:<instance> starts with one type byte:
//
//	P<seq>                          liveness probe sent by the instance itself
//	D<n>\n(<len>:<conn>){n}<data>   addressed send: data for each of the n
//	                                local connections (len is the decimal
//	                                byte length of the connection id)
//
// data is the JSON value exactly as the sender gave it. Unknown types and
// malformed envelopes are counted as dropped.
//
// # History payloads
//
// A plain publication's payload on <channel> is its data, verbatim. A
// history publication's is
//
//	!<offset>:<epoch>:<data>
//
// which no JSON text can be mistaken for ('!' starts none). Every instance
// decodes it and hands on data at Position{offset, epoch}; a malformed one
// is counted as dropped. An instance of a wshub without history would pass
// such payloads to clients as they are: enable history once every instance
// runs a version that has it.
//
// Epochs ("<server time in µs, base 36>.<instance nonce>") start whenever a
// publication finds no meta, or a meta without its stream: the first
// publication, after expiry or eviction of either key, after a restart
// without persistence. A read creates nothing: a channel without both keys
// reads as offset 0 and epoch "" (so a since above 0 is not recoverable).
//
// # Files
//
// The files stack in layers: a file refers only to names defined in the
// files of the rows above its own. The decisions are made in two
// deterministic cores (no goroutines, no I/O, table-tested without Redis);
// the runners above them only do I/O.
//
//	doc.go config.go names.go     settings, Redis names
//	envelope.go metrics.go        instance channel payloads, counters
//	slots.go                      cluster slots: key hash, CLUSTER SLOTS answers
//	history.go                    history streams: key names, the Lua scripts, their
//	                              answers and the history payload
//	presence_keys.go              presence key names, member values
//	presence_fix.go presence_local.go  presence: the count rebuild script; the
//	                              core: local members and a batch's changes
//	plan.go slotplan.go           the cores: what to (UN)SUBSCRIBE on one connection
//	                              (subPlan); which master's connection each channel
//	                              belongs on as slots move (slotPlan)
//	publish.go router.go probe.go PUBLISH, history append and read workers, slot map
//	                              reads, liveness probes
//	shard.go                      one pub/sub connection and its goroutine
//	writer_ctl.go                 what a writer goroutine shares with its callers
//	registry_local.go             the registry's record of Registry.Add's connections
//	                              (the hub's it does not keep: it walks hub.LocalConns)
//	registry_writer.go            the registry's writer goroutine: its queue, batches
//	                              and pipelines
//	registry_renew.go             its passes over every entry: refresh, rewrite, close
//	presence_writer.go            the presence store's writer goroutine
//	broker.go broker_history.go   Broker: the hub.Broker over the shards; carries
//	                              out the slot plan's moves; the hub.Historian
//	registry.go                   Registry: connections, lookups, addressed sends
//	presence.go                   Presence: channel members, Members and Stats
package redis
