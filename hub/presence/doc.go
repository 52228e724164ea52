// Package presence holds what wshub knows of a presence channel's members:
// the connections subscribed to it on every instance, with their users and
// the `info` claim of their tokens (PROTOCOL.md extensions, "Presence").
package presence
