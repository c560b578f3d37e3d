// Package ratchet is pfschat's cryptographic core: identity keys, cards,
// prekeys, the PQXDH handshake, Double Ratchet sessions and their wire format.
// It does no I/O and imports nothing of the project.
//
// # Keys and cards
//
// A user generates an IdentityKey (Ed25519 for signatures, X25519 for key
// agreement) and describes it in a Card, self-signed by NewCard. The relay adds
// its approval with SignAsRelay. A card's ID is hex SHA-256 of its canonical
// Snapshot. Cards travel as MarshalBinary bytes or as one printable line
// (Export / ImportCard); decoding never verifies, so always call
// VerifyWithRelay with the pinned relay key before trusting a card:
//
//	id, _ := ratchet.GenerateIdentityKey(rand.Reader)
//	card, _ := ratchet.NewCard(id, "alice", "username", "laptop", time.Now(), nil)
//	line := card.Export()                 // "pfscard1:..."
//	c, err := ratchet.ImportCard(line)    // typed errors, no verification
//	err = c.VerifyWithRelay(relayKey)     // self + relay signatures
//
// # Prekeys and bundles
//
// GeneratePreKey makes the four kinds of prekeys: a signed X25519 prekey,
// one-time X25519 prekeys, a signed last-resort ML-KEM-768 prekey and signed
// one-time ML-KEM-768 prekeys. The owner uploads the Public halves and keeps
// the PrivatePreKey (MarshalBinary; seal it at rest). The relay hands out a
// Bundle per card.
//
// # Sessions
//
// The initiator verifies the bundle and runs the handshake with StartSession;
// the responder decodes the first message with DecodeEnvelope, looks up the
// private prekeys its Initial header names, and calls AcceptSession, which also
// returns the first plaintext:
//
//	s, err := ratchet.StartSession(rand.Reader, myID, myCard, bobCard, relayKey, bundle)
//	wire, err := s.Encrypt([]byte("hi"))  // an initial message
//
//	env, err := ratchet.DecodeEnvelope(wire)
//	if env.Initial != nil { /* find an existing session by env.Initial.SessionID(), else: */
//		bob, pt, err := ratchet.AcceptSession(bobID, bobCard, aliceCard, keys, env)
//	}
//
// Both sides then call Encrypt and Decrypt. The initiator keeps sending
// initial messages until it has decrypted a reply (Acknowledged), so losing
// its first message does not lose the session; Decrypt accepts such repeats
// for its own session and returns ErrWrongSession for another one.
//
// Decrypt works on a copy of the ratchet state and commits only after the
// message authenticates, so a replayed, truncated, tampered or foreign message
// returns an error and leaves the session byte-for-byte unchanged. Persist the
// session (MarshalBinary, ParseSession) after every Encrypt and successful
// Decrypt, in the same transaction as the message it produced or consumed.
//
// # Determinism and errors
//
// Everything random comes from an io.Reader argument (or Session.SetRand), so
// the protocol is deterministic under a seeded source, with one exception: the
// ML-KEM encapsulation in StartSession draws from crypto/rand (the standard
// library offers a derandomized one only for known-answer tests; the test
// vectors reach it through a test hook). Every decoder rejects
// bad input with an error wrapping one of the Err* sentinels (errors.Is) and
// never panics. Labels and domain strings are in labels.go; each encoding is
// documented on its MarshalBinary or decoder.
package ratchet
