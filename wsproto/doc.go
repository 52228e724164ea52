// Package wsproto implements the RFC 6455 pieces wshub needs on plain byte
// slices: incremental handshake parsing, frame decoding on partial input with
// reassembly and UTF-8 validation, close codes, and pooled, refcounted server
// frames. It performs no I/O and starts no goroutines.
package wsproto
