package peerbench

import (
	"context"
	"fmt"

	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/libsignal/logger"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/session"
	"go.mau.fi/libsignal/state/record"
	"go.mau.fi/libsignal/util/keyhelper"
	"go.mau.fi/libsignal/util/optional"
)

// LibsignalPeer is go.mau.fi/libsignal v0.2.1: Signal's protocol (X3DH + Double Ratchet,
// AES-CBC + HMAC-SHA256, protobuf wire format) as used by whatsmeow.
func LibsignalPeer() Peer {
	return Peer{
		Name:      "libsignal",
		SameChain: libsignalSameChain,
		PingPong:  libsignalPingPong,
		Handshake: libsignalHandshake,
		SaveLoad:  libsignalSaveLoad,
	}
}

// quietLogger silences libsignal's default logger, which prints to stdout.
type quietLogger struct{}

func (quietLogger) Debug(string, string)   {}
func (quietLogger) Info(string, string)    {}
func (quietLogger) Warning(string, string) {}
func (quietLogger) Error(string, string)   {}
func (quietLogger) Configure(string)       {}

func init() {
	var l logger.Loggable = quietLogger{}
	logger.Setup(&l)
}

// lsUser is one libsignal party: long-term keys, published prekeys and in-memory stores
// (maps, no serialization: the most favourable store for the peer).
type lsUser struct {
	ser          *serialize.Serializer
	address      *protocol.SignalAddress
	identity     *identity.KeyPair
	regID        uint32
	preKey       *record.PreKey
	signedPreKey *record.SignedPreKey

	sessions   *lsSessionStore
	preKeys    *lsPreKeyStore
	signedKeys *lsSignedPreKeyStore
	identities *lsIdentityStore
}

func newLsUser(name string, deviceID uint32, ser *serialize.Serializer) (*lsUser, error) {
	idKey, err := keyhelper.GenerateIdentityKeyPair()
	if err != nil {
		return nil, fmt.Errorf("libsignal identity key: %w", err)
	}
	pks, err := keyhelper.GeneratePreKeys(1, 1, ser.PreKeyRecord)
	if err != nil {
		return nil, fmt.Errorf("libsignal prekeys: %w", err)
	}
	spk, err := keyhelper.GenerateSignedPreKey(idKey, 1, ser.SignedPreKeyRecord)
	if err != nil {
		return nil, fmt.Errorf("libsignal signed prekey: %w", err)
	}
	u := &lsUser{
		ser:          ser,
		address:      protocol.NewSignalAddress(name, deviceID),
		identity:     idKey,
		regID:        keyhelper.GenerateRegistrationID(),
		preKey:       pks[0],
		signedPreKey: spk,
		preKeys:      &lsPreKeyStore{m: map[uint32]*record.PreKey{}},
		signedKeys:   &lsSignedPreKeyStore{m: map[uint32]*record.SignedPreKey{}},
	}
	u.identities = &lsIdentityStore{pair: idKey, regID: u.regID, trusted: map[string]*identity.Key{}}
	u.resetSessions()
	u.republish()
	u.signedKeys.m[spk.ID()] = spk
	return u, nil
}

// republish puts the one-time prekey back (the responder deletes it when used).
func (u *lsUser) republish() { u.preKeys.m[u.preKey.ID().Value] = u.preKey }

func (u *lsUser) resetSessions() {
	u.sessions = &lsSessionStore{ser: u.ser, m: map[string]*record.Session{}}
}

func (u *lsUser) bundle() *prekey.Bundle {
	return prekey.NewBundle(u.regID, u.address.DeviceID(),
		optional.NewOptionalUint32(u.preKey.ID().Value), u.signedPreKey.ID(),
		u.preKey.KeyPair().PublicKey(), u.signedPreKey.KeyPair().PublicKey(),
		u.signedPreKey.Signature(), u.identity.PublicKey())
}

func (u *lsUser) cipherTo(peer *lsUser) (*session.Builder, *session.Cipher) {
	b := session.NewBuilder(u.sessions, u.preKeys, u.signedKeys, u.identities, peer.address, u.ser)
	return b, session.NewCipher(b, peer.address)
}

// lsPair is an established, acknowledged libsignal session between two users.
type lsPair struct {
	alice, bob   *lsUser
	aliceB       *session.Builder
	aliceC, bobC *session.Cipher
	ctx          context.Context
}

// handshake runs one complete X3DH session setup plus the first message, as timed in
// the handshake workload: Alice processes Bob's bundle (signature verify, X3DH), encrypts
// a PreKeySignalMessage; Bob parses it, builds his session and decrypts.
func (p *lsPair) handshake(first []byte) error {
	ctx := p.ctx
	if err := p.aliceB.ProcessBundle(ctx, p.bob.bundle()); err != nil {
		return fmt.Errorf("libsignal process bundle: %w", err)
	}
	msg, err := p.aliceC.Encrypt(ctx, first)
	if err != nil {
		return fmt.Errorf("libsignal encrypt initial: %w", err)
	}
	pkm, err := protocol.NewPreKeySignalMessageFromBytes(msg.Serialize(), p.bob.ser.PreKeySignalMessage, p.bob.ser.SignalMessage)
	if err != nil {
		return fmt.Errorf("libsignal parse initial: %w", err)
	}
	got, err := p.bobC.DecryptMessage(ctx, pkm)
	if err != nil {
		return fmt.Errorf("libsignal decrypt initial: %w", err)
	}
	return checkSame(first, got)
}

// send sends one normal message from -> to over the wire form and checks it.
func lsSend(ctx context.Context, from *session.Cipher, to *session.Cipher, ser *serialize.Serializer, pt []byte) error {
	msg, err := from.Encrypt(ctx, pt)
	if err != nil {
		return fmt.Errorf("libsignal encrypt: %w", err)
	}
	if msg.Type() != protocol.WHISPER_TYPE {
		return fmt.Errorf("libsignal: expected a normal message, got type %d", msg.Type())
	}
	sm, err := protocol.NewSignalMessageFromBytes(msg.Serialize(), ser.SignalMessage)
	if err != nil {
		return fmt.Errorf("libsignal parse: %w", err)
	}
	got, err := to.Decrypt(ctx, sm)
	if err != nil {
		return fmt.Errorf("libsignal decrypt: %w", err)
	}
	return checkSame(pt, got)
}

func (p *lsPair) connect() {
	p.aliceB, p.aliceC = p.alice.cipherTo(p.bob)
	_, p.bobC = p.bob.cipherTo(p.alice)
}

func newLsPair() (*lsPair, error) {
	ser := serialize.NewProtoBufSerializer()
	alice, err := newLsUser("alice", 1, ser)
	if err != nil {
		return nil, err
	}
	bob, err := newLsUser("bob", 1, ser)
	if err != nil {
		return nil, err
	}
	p := &lsPair{alice: alice, bob: bob, ctx: context.Background()}
	p.connect()
	return p, nil
}

// newLsAcked builds a pair, runs the handshake and one reply, so both sides send normal
// (non-prekey) messages from then on.
func newLsAcked() (*lsPair, error) {
	p, err := newLsPair()
	if err != nil {
		return nil, err
	}
	if err := p.handshake(Plaintext(64, 0)); err != nil {
		return nil, err
	}
	if err := lsSend(p.ctx, p.bobC, p.aliceC, p.bob.ser, Plaintext(64, 1)); err != nil {
		return nil, fmt.Errorf("libsignal first reply: %w", err)
	}
	return p, nil
}

func libsignalSameChain(size int) (Step, error) {
	p, err := newLsAcked()
	if err != nil {
		return nil, err
	}
	pt := Plaintext(size, 2)
	return func() error { return lsSend(p.ctx, p.aliceC, p.bobC, p.alice.ser, pt) }, nil
}

func libsignalPingPong(size int) (Step, error) {
	p, err := newLsAcked()
	if err != nil {
		return nil, err
	}
	pt := Plaintext(size, 3)
	turn := 0
	return func() error {
		turn++
		if turn%2 == 1 {
			return lsSend(p.ctx, p.aliceC, p.bobC, p.alice.ser, pt)
		}
		return lsSend(p.ctx, p.bobC, p.aliceC, p.bob.ser, pt)
	}, nil
}

func libsignalHandshake() (Step, error) {
	p, err := newLsPair()
	if err != nil {
		return nil, err
	}
	first := Plaintext(64, 4)
	return func() error {
		// Fresh session stores and the one-time prekey back in place, so every
		// iteration is a first contact (map allocations only; untimed setup is not
		// possible inside a Step, and this costs well under a microsecond).
		p.alice.resetSessions()
		p.bob.resetSessions()
		p.alice.identities.trusted = map[string]*identity.Key{}
		p.bob.identities.trusted = map[string]*identity.Key{}
		p.bob.republish()
		p.connect()
		return p.handshake(first)
	}, nil
}

func libsignalSaveLoad() (Step, error) {
	p, err := newLsAcked()
	if err != nil {
		return nil, err
	}
	if err := lsSend(p.ctx, p.aliceC, p.bobC, p.alice.ser, Plaintext(64, 5)); err != nil {
		return nil, err
	}
	rec := p.alice.sessions.m[p.bob.address.String()]
	if rec == nil {
		return nil, fmt.Errorf("libsignal: no session record")
	}
	ser := p.alice.ser
	return func() error {
		b := rec.Serialize()
		back, err := record.NewSessionFromBytes(b, ser.Session, ser.State)
		if err != nil {
			return fmt.Errorf("libsignal parse: %w", err)
		}
		if back.SessionState().SenderChainKey().Index() != rec.SessionState().SenderChainKey().Index() {
			return fmt.Errorf("libsignal: session changed in a round trip")
		}
		return nil
	}, nil
}

// In-memory stores -------------------------------------------------------------------

type lsSessionStore struct {
	ser *serialize.Serializer
	m   map[string]*record.Session
}

func (s *lsSessionStore) LoadSession(_ context.Context, a *protocol.SignalAddress) (*record.Session, error) {
	if r, ok := s.m[a.String()]; ok {
		return r, nil
	}
	r := record.NewSession(s.ser.Session, s.ser.State)
	s.m[a.String()] = r
	return r, nil
}
func (s *lsSessionStore) GetSubDeviceSessions(context.Context, string) ([]uint32, error) {
	return nil, nil
}
func (s *lsSessionStore) StoreSession(_ context.Context, a *protocol.SignalAddress, r *record.Session) error {
	s.m[a.String()] = r
	return nil
}
func (s *lsSessionStore) ContainsSession(_ context.Context, a *protocol.SignalAddress) (bool, error) {
	_, ok := s.m[a.String()]
	return ok, nil
}
func (s *lsSessionStore) DeleteSession(_ context.Context, a *protocol.SignalAddress) error {
	delete(s.m, a.String())
	return nil
}
func (s *lsSessionStore) DeleteAllSessions(context.Context) error {
	clear(s.m)
	return nil
}

type lsPreKeyStore struct{ m map[uint32]*record.PreKey }

func (s *lsPreKeyStore) LoadPreKey(_ context.Context, id uint32) (*record.PreKey, error) {
	return s.m[id], nil
}
func (s *lsPreKeyStore) StorePreKey(_ context.Context, id uint32, r *record.PreKey) error {
	s.m[id] = r
	return nil
}
func (s *lsPreKeyStore) ContainsPreKey(_ context.Context, id uint32) (bool, error) {
	_, ok := s.m[id]
	return ok, nil
}
func (s *lsPreKeyStore) RemovePreKey(_ context.Context, id uint32) error {
	delete(s.m, id)
	return nil
}

type lsSignedPreKeyStore struct {
	m map[uint32]*record.SignedPreKey
}

func (s *lsSignedPreKeyStore) LoadSignedPreKey(_ context.Context, id uint32) (*record.SignedPreKey, error) {
	return s.m[id], nil
}
func (s *lsSignedPreKeyStore) LoadSignedPreKeys(context.Context) ([]*record.SignedPreKey, error) {
	out := make([]*record.SignedPreKey, 0, len(s.m))
	for _, r := range s.m {
		out = append(out, r)
	}
	return out, nil
}
func (s *lsSignedPreKeyStore) StoreSignedPreKey(_ context.Context, id uint32, r *record.SignedPreKey) error {
	s.m[id] = r
	return nil
}
func (s *lsSignedPreKeyStore) ContainsSignedPreKey(_ context.Context, id uint32) (bool, error) {
	_, ok := s.m[id]
	return ok, nil
}
func (s *lsSignedPreKeyStore) RemoveSignedPreKey(_ context.Context, id uint32) error {
	delete(s.m, id)
	return nil
}

type lsIdentityStore struct {
	pair    *identity.KeyPair
	regID   uint32
	trusted map[string]*identity.Key
}

func (s *lsIdentityStore) GetIdentityKeyPair() *identity.KeyPair { return s.pair }
func (s *lsIdentityStore) GetLocalRegistrationID() uint32        { return s.regID }
func (s *lsIdentityStore) SaveIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) error {
	s.trusted[a.String()] = k
	return nil
}
func (s *lsIdentityStore) IsTrustedIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) (bool, error) {
	t, ok := s.trusted[a.String()]
	return !ok || t.Fingerprint() == k.Fingerprint(), nil
}
