package cluster

// The binary records the directory keeps in its key-value bucket. Each starts with a
// type tag and a version byte; fields are uvarint-length-prefixed bytes and
// fixed-width big-endian integers. Decoders refuse anything else with ErrDamaged.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"pfschat/storage"
)

// ErrDamaged: a record in the bucket does not parse (a bug, a foreign writer, or a
// damaged store). The operation that met it changed nothing.
var ErrDamaged = errors.New("relay/cluster: damaged record in the directory bucket")

// Record tags.
const (
	tagAccount  byte = 'A'
	tagReplaced byte = 'R'
	tagCard     byte = 'C'
	tagPreKeys  byte = 'P'
	tagInvite   byte = 'I'
	tagBlocks   byte = 'B'
	tagBucket   byte = 'L' // a shared token bucket (limits.go)
	tagBlob     byte = 'O' // blob metadata (blobs.go)
	tagUsage    byte = 'U' // an owner's blob bytes (blobs.go)

	recordVersion byte = 1
)

// maxRecordField bounds one length-prefixed field (a card is a few KiB; a prekey list of
// 100 KEM keys about 120 KiB).
const maxRecordField = 1 << 20

type enc struct{ b []byte }

func newEnc(tag byte) *enc { return &enc{b: []byte{tag, recordVersion}} }

func (e *enc) bytes(v []byte) *enc {
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
	return e
}

func (e *enc) str(v string) *enc { return e.bytes([]byte(v)) }

func (e *enc) i64(v int64) *enc {
	e.b = binary.BigEndian.AppendUint64(e.b, uint64(v))
	return e
}

func (e *enc) u32(v uint32) *enc {
	e.b = binary.BigEndian.AppendUint32(e.b, v)
	return e
}

func (e *enc) count(n int) *enc {
	e.b = binary.AppendUvarint(e.b, uint64(n))
	return e
}

type dec struct {
	b    []byte
	err  error
	what string
}

func newDec(tag byte, what string, b []byte) *dec {
	d := &dec{b: b, what: what}
	if len(b) < 2 || b[0] != tag {
		d.fail("wrong record type")
		return d
	}
	if b[1] != recordVersion {
		d.fail(fmt.Sprintf("record version %d, this relay reads %d: upgrade pfschat", b[1], recordVersion))
		return d
	}
	d.b = b[2:]
	return d
}

func (d *dec) fail(why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrDamaged, d.what, why)
	}
	d.b = nil
}

func (d *dec) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > max || n != len(binary.AppendUvarint(nil, v)) {
		d.fail("bad length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint(maxRecordField)
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.fail("truncated")
		return nil
	}
	v := slices.Clone(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) i64() int64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := int64(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) u32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

// count reads a list length, at most max, each element at least minSize bytes.
func (d *dec) count(max, minSize int) int {
	n := d.uvarint(uint64(max))
	if d.err == nil && n*uint64(minSize) > uint64(len(d.b)) {
		d.fail("list longer than the record")
		return 0
	}
	return int(n)
}

// done checks that the record ended exactly.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// accountRec is an account: its current card, its recovery verifier, when it
// registered and last logged in (Unix ns, 0 = never), and the ids of the cards it
// replaced (their replaced-card records go with the account).
type accountRec struct {
	Name      string
	CardID    string
	Card      []byte
	CreatedAt int64
	LastLogin int64
	Recovery  []byte
	Replaced  []string
}

// maxReplaced bounds the replaced cards an account remembers (the oldest are
// forgotten: their logins then answer login_failed instead of card_replaced), as the
// SQLite store does.
const maxReplaced = storage.MaxReplacedCards

func (a *accountRec) encode() []byte {
	e := newEnc(tagAccount).str(a.Name).str(a.CardID).bytes(a.Card).i64(a.CreatedAt).i64(a.LastLogin).bytes(a.Recovery)
	e.count(len(a.Replaced))
	for _, r := range a.Replaced {
		e.str(r)
	}
	return e.b
}

func decodeAccount(b []byte) (accountRec, error) {
	d := newDec(tagAccount, "account", b)
	a := accountRec{Name: d.str(), CardID: d.str(), Card: d.bytes(), CreatedAt: d.i64(), LastLogin: d.i64(), Recovery: d.bytes()}
	n := d.count(maxReplaced, 1)
	for i := 0; i < n && d.err == nil; i++ {
		a.Replaced = append(a.Replaced, d.str())
	}
	if d.err == nil && (a.Name == "" || a.CardID == "") {
		d.fail("account without a name or a card id")
	}
	if len(a.Recovery) == 0 {
		a.Recovery = nil
	}
	return a, d.done()
}

// replacedRec is a card replace_card or recover replaced.
type replacedRec struct {
	Name       string
	CardID     string
	Card       []byte
	ReplacedAt int64
}

func (r *replacedRec) encode() []byte {
	return newEnc(tagReplaced).str(r.Name).str(r.CardID).bytes(r.Card).i64(r.ReplacedAt).b
}

func decodeReplaced(b []byte) (replacedRec, error) {
	d := newDec(tagReplaced, "replaced card", b)
	r := replacedRec{Name: d.str(), CardID: d.str(), Card: d.bytes(), ReplacedAt: d.i64()}
	return r, d.done()
}

// cardRec maps a card id to the name whose current card it is.
func encodeCard(name string) []byte { return newEnc(tagCard).str(name).b }

func decodeCard(b []byte) (string, error) {
	d := newDec(tagCard, "card index", b)
	name := d.str()
	if d.err == nil && name == "" {
		d.fail("empty name")
	}
	return name, d.done()
}

// preKey is one stored prekey.
type preKey struct {
	ID   uint32
	Data []byte
}

// maxPreKeysPerRecord bounds one card's prekeys of one kind.
const maxPreKeysPerRecord = 1 << 16

// encodePreKeys encodes a card's prekeys of one kind, ascending by id.
func encodePreKeys(keys []preKey) []byte {
	e := newEnc(tagPreKeys).count(len(keys))
	for _, k := range keys {
		e.u32(k.ID).bytes(k.Data)
	}
	return e.b
}

func decodePreKeys(b []byte) ([]preKey, error) {
	d := newDec(tagPreKeys, "prekeys", b)
	n := d.count(maxPreKeysPerRecord, 5)
	keys := make([]preKey, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		k := preKey{ID: d.u32(), Data: d.bytes()}
		if d.err == nil && i > 0 && k.ID <= keys[i-1].ID {
			d.fail("prekey ids not ascending")
		}
		keys = append(keys, k)
	}
	return keys, d.done()
}

// inviteRec is an invite code's state (its key is the code's hash).
type inviteRec struct {
	UsesLeft  int64
	ExpiresAt int64 // Unix ns, 0 = never
	CreatedAt int64
}

func (r *inviteRec) encode() []byte {
	return newEnc(tagInvite).i64(r.UsesLeft).i64(r.ExpiresAt).i64(r.CreatedAt).b
}

func decodeInvite(b []byte) (inviteRec, error) {
	d := newDec(tagInvite, "invite", b)
	r := inviteRec{UsesLeft: d.i64(), ExpiresAt: d.i64(), CreatedAt: d.i64()}
	return r, d.done()
}

// maxBlocksPerRecord bounds one blocker's list (relay.MaxBlocks is the policy).
const maxBlocksPerRecord = 1 << 16

// encodeBlocks encodes the names a blocker blocks, sorted.
func encodeBlocks(names []string) []byte {
	e := newEnc(tagBlocks).count(len(names))
	for _, n := range names {
		e.str(n)
	}
	return e.b
}

func decodeBlocks(b []byte) ([]string, error) {
	d := newDec(tagBlocks, "blocks", b)
	n := d.count(maxBlocksPerRecord, 1)
	names := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		names = append(names, d.str())
	}
	return names, d.done()
}

// encodeBucket encodes a shared token bucket: its theoretical arrival time (GCRA),
// Unix ns.
func encodeBucket(tat int64) []byte { return newEnc(tagBucket).i64(tat).b }

func decodeBucket(b []byte) (int64, error) {
	d := newDec(tagBucket, "token bucket", b)
	tat := d.i64()
	return tat, d.done()
}

// blobRec is a blob's metadata: its bytes are the object Object of the blob object
// store (chunks appended while uploading, the object's info published at commit).
type blobRec struct {
	Owner      string
	Size       int64
	Recipients int64
	Committed  bool
	Received   int64 // bytes stored (== Size once committed)
	Chunks     int64 // messages stored
	Object     string
	CreatedAt  int64
	ExpiresAt  int64
	Fetched    []string // names that fetched it completely
}

// maxFetchers bounds a blob's recorded fetchers (its recipients are fewer).
const maxFetchers = 1 << 12

func (r *blobRec) encode() []byte {
	c := int64(0)
	if r.Committed {
		c = 1
	}
	e := newEnc(tagBlob).str(r.Owner).i64(r.Size).i64(r.Recipients).i64(c).i64(r.Received).i64(r.Chunks).str(r.Object).i64(r.CreatedAt).i64(r.ExpiresAt)
	e.count(len(r.Fetched))
	for _, n := range r.Fetched {
		e.str(n)
	}
	return e.b
}

func decodeBlob(b []byte) (blobRec, error) {
	d := newDec(tagBlob, "blob", b)
	r := blobRec{Owner: d.str(), Size: d.i64(), Recipients: d.i64()}
	switch c := d.i64(); c {
	case 0, 1:
		r.Committed = c == 1
	default:
		d.fail("bad committed flag")
	}
	r.Received, r.Chunks, r.Object, r.CreatedAt, r.ExpiresAt = d.i64(), d.i64(), d.str(), d.i64(), d.i64()
	n := d.count(maxFetchers, 1)
	for i := 0; i < n && d.err == nil; i++ {
		r.Fetched = append(r.Fetched, d.str())
	}
	if d.err == nil && (r.Size < 0 || r.Received < 0 || r.Received > r.Size || r.Chunks < 0 || r.Recipients < 1) {
		d.fail("sizes out of range")
	}
	return r, d.done()
}

// usageRec is an owner's blobs: their bytes (the quota's count) and ids (deleted
// with the account).
type usageRec struct {
	Bytes int64
	IDs   []string
}

// maxOwnerBlobs bounds the blobs one owner's record lists.
const maxOwnerBlobs = 1 << 16

func (u *usageRec) encode() []byte {
	e := newEnc(tagUsage).i64(u.Bytes).count(len(u.IDs))
	for _, id := range u.IDs {
		e.str(id)
	}
	return e.b
}

func decodeUsage(b []byte) (usageRec, error) {
	d := newDec(tagUsage, "blob usage", b)
	u := usageRec{Bytes: d.i64()}
	n := d.count(maxOwnerBlobs, 1)
	for i := 0; i < n && d.err == nil; i++ {
		u.IDs = append(u.IDs, d.str())
	}
	return u, d.done()
}
