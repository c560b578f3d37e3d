package ratchet

// This file collects every domain-separation string and KDF label the protocol
// uses, so that SPEC.md can document them in one place and no two uses of a key
// ever share an input. Changing any of these values breaks interoperability and
// the test vectors; add a new version instead.

// Signature domains. A signature by an identity key is always Ed25519 over
//
//	domain ‖ 0x00 ‖ message
//
// (see IdentityKey.Sign). The 0x00 separator cannot appear inside a domain, so
// two different (domain, message) pairs never produce the same signed bytes.
const (
	// DomainCardSelf is signed by the card owner's identity key over the card
	// snapshot (Card.Snapshot).
	DomainCardSelf = "pfschat/v1/card/self"
	// DomainCardRelay is signed by the relay key over snapshot ‖ self signature,
	// so the relay approves exactly one self-signed card.
	DomainCardRelay = "pfschat/v1/card/relay"
	// DomainPreKey is signed by the identity key over the prekey's
	// kind (1 byte) ‖ id (uint32 big endian) ‖ created-at (int64 Unix seconds,
	// big endian) ‖ public key bytes.
	DomainPreKey = "pfschat/v1/prekey"
)

// KDF labels (HKDF-SHA256 "info" strings) and hash prefixes.
const (
	// LabelPQXDH is the HKDF info of the handshake:
	//
	//	SK = HKDF-SHA256(salt = 32 zero bytes,
	//	                 ikm  = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS,
	//	                 info = LabelPQXDH, L = 32)
	LabelPQXDH = "pfschat/v1/pqxdh X25519 SHA-256 ML-KEM-768"
	// LabelRootKDF is the HKDF info of KDF_RK:
	//
	//	RK', CK = split(HKDF-SHA256(salt = RK, ikm = DH output, info = LabelRootKDF, L = 64), 32)
	//
	// Kept at most 22 bytes so the second HKDF-Expand block (T1 ‖ info ‖ 0x02)
	// fits with the HMAC ipad block in two SHA-256 compressions.
	LabelRootKDF = "pfschat/v1/root"
	// LabelMessageKeys is the HKDF info of the message-key expansion:
	//
	//	key, nonce = split(HKDF-SHA256(salt = 32 zero bytes, ikm = MK,
	//	                                info = LabelMessageKeys, L = 44), 32)
	//
	// At most 22 bytes, like LabelRootKDF: this runs twice per message.
	LabelMessageKeys = "pfschat/v1/msgkeys"
	// LabelSessionID prefixes the SHA-256 input that names a session:
	//
	//	SessionID = hex(SHA-256(LabelSessionID ‖ 0x00 ‖ initiator card ID (32 raw bytes)
	//	                        ‖ responder card ID (32 raw bytes) ‖ initiator ephemeral key (32)))
	LabelSessionID = "pfschat/v1/session id"
	// LabelFingerprint prefixes the SHA-256 input of Fingerprint.
	LabelFingerprint = "pfschat/v1/fingerprint"
)

// KDF_CK constants (Signal's recommendation): with HMAC-SHA256 keyed by the
// chain key CK,
//
//	MK  = HMAC-SHA256(CK, 0x01)
//	CK' = HMAC-SHA256(CK, 0x02)
const (
	chainMessageKeyByte = 0x01
	chainNextKeyByte    = 0x02
)

// Printable prefixes.
const (
	// CardExportPrefix starts every exported card: "pfscard1:" ‖ base64url
	// (no padding) of Card.MarshalBinary.
	CardExportPrefix = "pfscard1:"
)

// Format versions: the first byte of every binary encoding produced here.
const (
	cardSnapshotVersion = 1 // Card.Version, first byte of the snapshot
	cardFormatVersion   = 1 // Card.MarshalBinary
	identityKeyVersion  = 1 // IdentityKey.MarshalBinary
	preKeyVersion       = 1 // PublicPreKey / PrivatePreKey MarshalBinary
	bundleVersion       = 1 // Bundle.MarshalBinary
	envelopeVersion     = 1 // wire messages
	sessionVersion      = 1 // Session.MarshalBinary
)
