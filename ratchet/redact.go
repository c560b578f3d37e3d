package ratchet

import "fmt"

// The types that hold secrets format themselves without them, so a stray
// fmt.Printf("%v", session) or slog.Any("key", k) cannot leak key material.
// (fmt and log/slog use String for %v, %+v and %s, and GoString for %#v.)

// String describes the session without secrets.
func (s *Session) String() string {
	if s == nil {
		return "ratchet.Session(nil)"
	}
	role := "responder"
	if s.initiator {
		role = "initiator"
	}
	return fmt.Sprintf("ratchet.Session{id: %.16s…, peer card: %.16s…, %s, acknowledged: %v, sent: %d, received: %d, stored skipped keys: %d}",
		s.ID(), s.PeerCardID(), role, s.Acknowledged(), s.sendCount, s.recvCount, len(s.skipped))
}

// GoString is String: %#v must not print secrets either.
func (s *Session) GoString() string { return s.String() }

// String describes the identity key by its public halves.
func (k *IdentityKey) String() string {
	if k == nil {
		return "ratchet.IdentityKey(nil)"
	}
	return "ratchet.IdentityKey{signing key " + Fingerprint(k.SigningPublicKey()) + ", private halves redacted}"
}

// GoString is String.
func (k *IdentityKey) GoString() string { return k.String() }

// String describes the prekey by its public half.
func (p *PrivatePreKey) String() string {
	if p == nil {
		return "ratchet.PrivatePreKey(nil)"
	}
	return fmt.Sprintf("ratchet.PrivatePreKey{%s %d, created %s, private half redacted}", p.pub.Kind, p.pub.ID, p.pub.CreatedAt.Format("2006-01-02"))
}

// GoString is String.
func (p *PrivatePreKey) GoString() string { return p.String() }
