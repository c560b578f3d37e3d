// Package ratchet is pfschat's cryptographic core: identity keys, cards, prekeys,
// the PQXDH handshake and Double Ratchet sessions, and their wire format.
//
// It does no I/O. Every function that needs randomness takes an io.Reader, so the
// whole protocol is deterministic under a seeded source (see testdata/ for vectors),
// and every decoder rejects malformed input with a typed error instead of panicking.
// The byte-level specification is in SPEC.md.
package ratchet
