package server

// Relay key rotation: a planned key change, vouched for by the old key.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// metaKeyRotations holds the relay's key rotation statements, concatenated
// (relay.KeyRotationSize bytes each, oldest first).
const metaKeyRotations = "relay_key_rotations"

// Rotation is the outcome of RotateKey.
type Rotation struct {
	Old, New ed25519.PublicKey
	Cards    int // cards re-signed with the new key
}

// RotateKey gives the relay in st a new key: it makes the key, signs a statement by
// the old key (relay.KeyRotation) that relays serve in their hello so clients re-pin,
// and re-signs every registered card with the new key, all in one transaction. Run it
// while the relay is stopped: a running relay keeps its old key until restarted.
func RotateKey(ctx context.Context, st *storage.Relay, now time.Time) (Rotation, error) {
	return changeKey(ctx, st, now, true)
}

// ReplaceCompromisedKey gives the relay in st a new key with no statement from the
// old one, which must not be trusted any more: clients refuse the new key until their
// users re-pin it by hand (pfschat repin) after comparing its fingerprint with the
// operator's announcement. Cards are re-signed; the served statements are dropped.
func ReplaceCompromisedKey(ctx context.Context, st *storage.Relay) (Rotation, error) {
	return changeKey(ctx, st, time.Time{}, false)
}

func changeKey(ctx context.Context, st *storage.Relay, now time.Time, vouch bool) (Rotation, error) {
	oldSeed, err := st.Meta(ctx, metaRelayKey)
	if errors.Is(err, storage.ErrNotFound) {
		return Rotation{}, fmt.Errorf("relay: %s has no relay key to rotate", st.Path())
	}
	if err != nil {
		return Rotation{}, fmt.Errorf("relay: reading the relay key: %w", err)
	}
	if len(oldSeed) != ed25519.SeedSize {
		return Rotation{}, fmt.Errorf("relay: stored relay key has %d bytes: the database is damaged", len(oldSeed))
	}
	oldPriv := ed25519.NewKeyFromSeed(oldSeed)
	newSeed := make([]byte, ed25519.SeedSize)
	rand.Read(newSeed)
	newPriv := ed25519.NewKeyFromSeed(newSeed)
	newPub := newPriv.Public().(ed25519.PublicKey)
	var stmt []byte // nil: drop the statements (ReplaceCompromisedKey)
	if vouch {
		if stmt, err = relay.SignKeyRotation(oldPriv, newPub, now).MarshalBinary(); err != nil {
			return Rotation{}, err
		}
	}
	n, err := st.ReplaceRelayKey(ctx, metaRelayKey, oldSeed, newSeed, metaKeyRotations, stmt, func(raw []byte) ([]byte, error) {
		card, err := ratchet.ImportCard(string(raw))
		if err != nil {
			return nil, err
		}
		if err := card.SignAsRelay(newPriv); err != nil {
			return nil, err
		}
		return []byte(card.Export()), nil
	})
	if err != nil {
		return Rotation{}, err
	}
	return Rotation{Old: oldPriv.Public().(ed25519.PublicKey), New: newPub, Cards: n}, nil
}

// loadKeyRotations reads the statements the hello carries (the newest
// relay.MaxKeyRotations), refusing a damaged list.
func (s *Server) loadKeyRotations(ctx context.Context) error {
	raw, err := s.dir.Meta(ctx, metaKeyRotations)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("relay: reading the key rotation statements: %w", err)
	}
	if len(raw)%relay.KeyRotationSize != 0 {
		return fmt.Errorf("relay: the key rotation statements are %d bytes, not a multiple of %d: the database is damaged", len(raw), relay.KeyRotationSize)
	}
	var list [][]byte
	for i := 0; i < len(raw); i += relay.KeyRotationSize {
		b := raw[i : i+relay.KeyRotationSize]
		if _, err := relay.ParseKeyRotation(b); err != nil {
			return fmt.Errorf("relay: stored key rotation statement %d: %w", i/relay.KeyRotationSize, err)
		}
		list = append(list, b)
	}
	if len(list) > relay.MaxKeyRotations {
		list = list[len(list)-relay.MaxKeyRotations:]
	}
	s.keyRotations = list
	return nil
}
