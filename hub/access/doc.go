// Package access decides what a connection may do on a channel: its
// namespace's rules (who may subscribe, who may publish from a client), the
// ceiling of its token's channels claim, and user-limited channels
// (`dm:#alice,bob`). It is a deterministic core: no clock, no I/O, no
// allocation per decision. The hub asks it on every subscribe and client
// publish; nothing is asked per delivery.
package access
