// Package auth verifies the JSON Web Tokens that clients present on the
// WebSocket upgrade (PROTOCOL.md, "Connecting").
//
// A Verifier checks a token's signature against the configured HMAC secrets,
// PEM public keys and JWKS document, then its registered claims (exp, nbf,
// iat, iss, aud) and the gateway's own (sub, channels, info). Every failure is
// an *Error whose Reason is one of a small fixed set of strings, so that the
// gateway can count refusals by cause.
//
// Verify is safe for concurrent use from every event loop and never does
// unbounded work: tokens are capped at MaxTokenLen bytes, a token without kid
// tries at most MaxKeys keys, and an unknown kid refetches the JWKS at most once
// per Config.MinRefetch, whatever the number of such tokens.
//
// The signature checks are golang-jwt's; JWKS keys are decoded by go-jose. This
// package writes no cryptography of its own.
package auth
