package ratchet

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Card limits. They bound every field so a card always fits in a few KiB.
const (
	MaxIdentityTypeLen = 32
	MaxDeviceLen       = 64
	MaxCardDataEntries = 16
	MaxCardDataKeyLen  = 64
	MaxCardDataValLen  = 1024
	maxSnapshotLen     = 1 + 3*(1+255) + 64 + 8 + 1 + MaxCardDataEntries*(1+MaxCardDataKeyLen+2+MaxCardDataValLen)
	maxCardLen         = 1 + 2 + maxSnapshotLen + 2*(1+ed25519.SignatureSize)
	maxExportLen       = len(CardExportPrefix) + (maxCardLen*4+2)/3
)

// Card is a user's public identity (the seed's Virgil Card): who (name, type,
// device), both public keys and when, signed by its owner and, once published,
// by the relay.
//
// The Snapshot is the canonical encoding of everything but the signatures; the
// ID is hex SHA-256 of it. Cards from outside (ImportCard, ParseCard, the relay)
// are NOT verified on decode: call VerifyWithRelay (or at least Verify).
type Card struct {
	Version        uint8
	Identity       string            // user name, see ValidateName
	IdentityType   string            // e.g. "username"
	Device         string            // free label, e.g. "laptop"
	SigningKey     ed25519.PublicKey // 32 bytes
	AgreementKey   []byte            // 32 bytes, X25519
	CreatedAt      time.Time         // second precision, UTC
	Data           map[string]string // optional
	SelfSignature  []byte
	RelaySignature []byte // nil until the relay approves
}

// NewCard builds and self-signs a card for k.
func NewCard(k *IdentityKey, identity, identityType, device string, createdAt time.Time, data map[string]string) (*Card, error) {
	c := &Card{
		Version:      cardSnapshotVersion,
		Identity:     identity,
		IdentityType: identityType,
		Device:       device,
		SigningKey:   k.SigningPublicKey(),
		AgreementKey: k.AgreementPublicKey(),
		CreatedAt:    time.Unix(createdAt.Unix(), 0).UTC(),
	}
	if len(data) > 0 {
		c.Data = maps.Clone(data)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.SelfSignature = k.Sign(DomainCardSelf, c.Snapshot())
	return c, nil
}

func validLabel(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// validate checks every field against its format and limits.
func (c *Card) validate() error {
	if c.Version != cardSnapshotVersion {
		return errf(ErrUnknownVersion, "card version %d", c.Version)
	}
	if err := ValidateName(c.Identity); err != nil {
		return errf(err, "card identity")
	}
	if c.IdentityType == "" || !validLabel(c.IdentityType, MaxIdentityTypeLen) {
		return errf(ErrMalformed, "card identity type: want 1-%d printable bytes", MaxIdentityTypeLen)
	}
	if !validLabel(c.Device, MaxDeviceLen) {
		return errf(ErrMalformed, "card device label: want up to %d printable bytes", MaxDeviceLen)
	}
	if len(c.SigningKey) != ed25519.PublicKeySize {
		return errf(ErrMalformed, "card signing key: %d bytes, want 32", len(c.SigningKey))
	}
	if len(c.AgreementKey) != 32 {
		return errf(ErrMalformed, "card agreement key: %d bytes, want 32", len(c.AgreementKey))
	}
	if len(c.Data) > MaxCardDataEntries {
		return errf(ErrOversize, "card data: %d entries, limit %d", len(c.Data), MaxCardDataEntries)
	}
	for k, v := range c.Data {
		if k == "" || !validLabel(k, MaxCardDataKeyLen) {
			return errf(ErrMalformed, "card data key %q: want 1-%d printable bytes", k, MaxCardDataKeyLen)
		}
		if len(v) > MaxCardDataValLen || !utf8.ValidString(v) {
			return errf(ErrMalformed, "card data value of %q: want up to %d bytes of UTF-8", k, MaxCardDataValLen)
		}
	}
	return nil
}

// Snapshot is the canonical encoding of the card without signatures:
//
//	u8 version ‖ str8 identity ‖ str8 identity type ‖ str8 device
//	‖ fixed[32] Ed25519 key ‖ fixed[32] X25519 key ‖ i64 created-at (Unix s)
//	‖ u8 n ‖ n × (str8 key ‖ str16 value), keys in ascending byte order
//
// It is only meaningful for a card that passes Verify.
func (c *Card) Snapshot() []byte {
	b := make([]byte, 0, 128)
	b = append(b, c.Version)
	b = appendBytes8(b, []byte(c.Identity))
	b = appendBytes8(b, []byte(c.IdentityType))
	b = appendBytes8(b, []byte(c.Device))
	b = append(b, c.SigningKey...)
	b = append(b, c.AgreementKey...)
	b = appendI64(b, c.CreatedAt.Unix())
	keys := make([]string, 0, len(c.Data))
	for k := range c.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, byte(len(keys)))
	for _, k := range keys {
		b = appendBytes8(b, []byte(k))
		b = appendBytes16(b, []byte(c.Data[k]))
	}
	return b
}

// parseSnapshot decodes a snapshot strictly: canonical order, field limits.
func parseSnapshot(b []byte) (*Card, error) {
	r := reader{b: b}
	c := &Card{}
	c.Version = r.u8("card version")
	if r.err == nil && c.Version != cardSnapshotVersion {
		return nil, errf(ErrUnknownVersion, "card version %d (this build speaks %d)", c.Version, cardSnapshotVersion)
	}
	c.Identity = string(r.bytes8(32, "card identity"))
	c.IdentityType = string(r.bytes8(MaxIdentityTypeLen, "card identity type"))
	c.Device = string(r.bytes8(MaxDeviceLen, "card device"))
	c.SigningKey = slices.Clone(r.take(32, "card signing key"))
	c.AgreementKey = slices.Clone(r.take(32, "card agreement key"))
	c.CreatedAt = time.Unix(r.i64("card created-at"), 0).UTC()
	n := int(r.u8("card data count"))
	if r.err == nil && n > MaxCardDataEntries {
		return nil, errf(ErrOversize, "card data: %d entries, limit %d", n, MaxCardDataEntries)
	}
	prev := ""
	for i := 0; i < n && r.err == nil; i++ {
		k := string(r.bytes8(MaxCardDataKeyLen, "card data key"))
		v := string(r.bytes16(MaxCardDataValLen, "card data value"))
		if r.err != nil {
			break
		}
		if i > 0 && k <= prev {
			return nil, errf(ErrMalformed, "card data keys not in strictly ascending order at %q", k)
		}
		prev = k
		if c.Data == nil {
			c.Data = make(map[string]string, n)
		}
		c.Data[k] = v
	}
	if err := r.done("card snapshot"); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ID is hex SHA-256 of the snapshot: 64 lowercase hex characters.
func (c *Card) ID() string {
	sum := c.rawID()
	return hex.EncodeToString(sum[:])
}

func (c *Card) rawID() [32]byte { return sha256.Sum256(c.Snapshot()) }

// Verify checks that every field is well-formed (so the snapshot and ID are
// canonical) and that the self signature holds. It does not check the relay
// signature; see VerifyWithRelay.
func (c *Card) Verify() error {
	if err := c.validate(); err != nil {
		return err
	}
	if err := VerifySignature(c.SigningKey, DomainCardSelf, c.Snapshot(), c.SelfSignature); err != nil {
		return errf(err, "card %s (%s) self signature", c.Identity, shortID(c))
	}
	return nil
}

// VerifyWithRelay is Verify plus the relay's approval signature.
func (c *Card) VerifyWithRelay(relayKey ed25519.PublicKey) error {
	if err := c.Verify(); err != nil {
		return err
	}
	if len(c.RelaySignature) == 0 {
		return errf(ErrBadSignature, "card %s (%s) is not signed by the relay", c.Identity, shortID(c))
	}
	if err := VerifySignature(relayKey, DomainCardRelay, c.relaySignedBytes(), c.RelaySignature); err != nil {
		return errf(err, "card %s (%s) relay signature", c.Identity, shortID(c))
	}
	return nil
}

func (c *Card) relaySignedBytes() []byte {
	return append(c.Snapshot(), c.SelfSignature...)
}

// SignAsRelay adds the relay's approval: a signature by relayKey over
// snapshot ‖ self signature under DomainCardRelay. It refuses a card whose self
// signature does not hold.
func (c *Card) SignAsRelay(relayKey ed25519.PrivateKey) error {
	if len(relayKey) != ed25519.PrivateKeySize {
		return errf(ErrMalformed, "relay key: %d bytes", len(relayKey))
	}
	if err := c.Verify(); err != nil {
		return err
	}
	c.RelaySignature = signWith(relayKey, DomainCardRelay, c.relaySignedBytes())
	return nil
}

func shortID(c *Card) string { return c.ID()[:16] }

// MarshalBinary encodes the card with its signatures:
//
//	u8 format version (1) ‖ bytes16 snapshot ‖ bytes8 self signature ‖ bytes8 relay signature (may be empty)
func (c *Card) MarshalBinary() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	snap := c.Snapshot()
	b := make([]byte, 0, 1+2+len(snap)+2+len(c.SelfSignature)+len(c.RelaySignature))
	b = append(b, cardFormatVersion)
	b = appendBytes16(b, snap)
	b = appendBytes8(b, c.SelfSignature)
	b = appendBytes8(b, c.RelaySignature)
	return b, nil
}

// ParseCard decodes MarshalBinary output. It checks structure only; the caller
// must Verify / VerifyWithRelay.
func ParseCard(b []byte) (*Card, error) {
	r := reader{b: b}
	r.version(cardFormatVersion, "card format")
	snap := r.bytes16(maxSnapshotLen, "card snapshot")
	self := r.bytes8(ed25519.SignatureSize, "card self signature")
	relay := r.bytes8(ed25519.SignatureSize, "card relay signature")
	if err := r.done("card"); err != nil {
		return nil, err
	}
	if len(self) != ed25519.SignatureSize {
		return nil, errf(ErrMalformed, "card self signature: %d bytes, want 64", len(self))
	}
	if len(relay) != 0 && len(relay) != ed25519.SignatureSize {
		return nil, errf(ErrMalformed, "card relay signature: %d bytes, want 0 or 64", len(relay))
	}
	c, err := parseSnapshot(snap)
	if err != nil {
		return nil, err
	}
	c.SelfSignature = slices.Clone(self)
	if len(relay) > 0 {
		c.RelaySignature = slices.Clone(relay)
	}
	return c, nil
}

// Export returns the card as one printable line: CardExportPrefix ‖ base64url
// (unpadded) of MarshalBinary. An invalid card exports as the prefix alone,
// which ImportCard rejects.
func (c *Card) Export() string {
	b, err := c.MarshalBinary()
	if err != nil {
		return CardExportPrefix
	}
	return CardExportPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// exportWhiteSpace is what ImportCard removes anywhere in a line: space, tab, CR, LF.
const exportWhiteSpace = " \t\r\n"

// ImportCard decodes an exported card. Space, tab, CR and LF anywhere are
// ignored, so a line wrapped by a terminal or mail client still imports; other
// white space is not base64url and fails (ErrMalformed). It does NOT verify
// the card: call VerifyWithRelay (or Verify) before trusting it.
func ImportCard(s string) (*Card, error) {
	if len(s) > 2*maxExportLen {
		return nil, errf(ErrOversize, "exported card: %d characters, limit %d", len(s), maxExportLen)
	}
	if strings.ContainsAny(s, exportWhiteSpace) {
		// Exactly the four of SPEC §6.5. (strings.Fields would also drop every other
		// Unicode white space, but only when one of these four is present too.)
		b := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			if c := s[i]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				b = append(b, c)
			}
		}
		s = string(b)
	}
	if len(s) > maxExportLen {
		return nil, errf(ErrOversize, "exported card: %d characters, limit %d", len(s), maxExportLen)
	}
	rest, ok := strings.CutPrefix(s, CardExportPrefix)
	if !ok {
		if strings.HasPrefix(s, "pfscard") {
			return nil, errf(ErrUnknownVersion, "exported card: prefix %q (this build reads %q)", prefixOf(s), CardExportPrefix)
		}
		return nil, errf(ErrMalformed, "exported card: does not start with %q", CardExportPrefix)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, errf(ErrMalformed, "exported card: base64url: %v", err)
	}
	c, err := ParseCard(b)
	if err != nil {
		return nil, errf(err, "exported card")
	}
	return c, nil
}

func prefixOf(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 && i < 16 {
		return s[:i+1]
	}
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// CheckID returns an error wrapping ErrCardIDMismatch unless the card's ID is
// want (hex, as ID returns). Use it when a card arrives for a pinned ID.
func (c *Card) CheckID(want string) error {
	got := c.ID()
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errf(ErrCardIDMismatch, "card %s has ID %s, want %s", c.Identity, got, want)
	}
	return nil
}
