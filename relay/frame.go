package relay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"pfschat/ratchet"
)

// ProtocolVersion is the version of the frame protocol this package speaks. The
// WebSocket path (/v2/ws, WSPath) carries the major version; the hello exchange
// negotiates within it. See PROTOCOL.md.
const ProtocolVersion = 2

// SupportedVersions lists every protocol version this package can speak. Read only.
var SupportedVersions = []int{ProtocolVersion}

// MaxFrameSize is the largest frame, in bytes of JSON text, either side accepts.
const MaxFrameSize = 64 << 10

// LowPreKeysWindow is the relay's low_prekeys notice window: a card's owner is told
// at most once per window, and a client reacts (generates keys) at most once per
// window (PROTOCOL.md "Limits and abuse").
const LowPreKeysWindow = 10 * time.Minute

// MaxBodySize is the largest message body a send may carry: its base64 plus the
// deliver frame around it must still fit in MaxFrameSize.
const MaxBodySize = 48000

// Frame types sent by clients.
const (
	TypeHello         = "hello"
	TypeRegister      = "register"
	TypeLogin         = "login"
	TypeLogoutAll     = "logout_all"
	TypeLookup        = "lookup"
	TypeUploadPreKeys = "upload_prekeys"
	TypePreKeyStatus  = "prekey_status"
	TypeFetchBundle   = "fetch_bundle"
	TypeReplaceCard   = "replace_card"
	TypeSend          = "send"
	TypeAck           = "ack"
	TypePing          = "ping"
	// Operations: a card deletes its own account.
	TypeDeleteAccount = "delete_account"
	// Blocking (PROTOCOL.md "Blocking"): the logged-in name refuses another's messages
	// and bundle fetches, or takes that back.
	TypeBlock   = "block"
	TypeUnblock = "unblock"
	// Identity recovery (PROTOCOL.md "Identity replacement and recovery"): a new card
	// for a name by its recovery code (before login), a new recovery code (logged in).
	TypeRecover     = "recover"
	TypeSetRecovery = "set_recovery"
	// TypeLookupCard looks a card up by its ID (PROTOCOL.md "lookup_card"), the current
	// card of a name: a responder fetches the card an initial header names.
	TypeLookupCard = "lookup_card"
	// Blobs (PROTOCOL.md "Blobs"): encrypted attachments, uploaded and fetched in chunks.
	TypeBlobBegin  = "blob_begin"
	TypeBlobResume = "blob_resume"
	TypeBlobPut    = "blob_put"
	TypeBlobCommit = "blob_commit"
	TypeBlobGet    = "blob_get"
	TypeBlobDone   = "blob_done"
)

// Frame types sent by the relay (besides hello and prekey_status, which go both ways).
const (
	TypeOK         = "ok"
	TypeError      = "error"
	TypeCard       = "card"
	TypeBundle     = "bundle"
	TypeAccepted   = "accepted"
	TypeDeliver    = "deliver"
	TypeSynced     = "synced"
	TypeLowPreKeys = "low_prekeys"
	TypeGoingAway  = "going_away"
	TypePong       = "pong"
	// TypeLimitNotice tells a card's owner an abuse limit was applied to it (PROTOCOL.md
	// "Limits and abuse"): {"type":"limit_notice","limit":"...","message":"..."}.
	TypeLimitNotice = "limit_notice"
	// Blobs: TypeBlob answers blob_begin, blob_resume and blob_commit; TypeBlobChunk
	// answers blob_get.
	TypeBlob      = "blob"
	TypeBlobChunk = "blob_chunk"
)

// Blob sizes (PROTOCOL.md "Blobs").
const (
	// BlobChunkSize is the size of every blob chunk but the last: 32 KiB, so that a
	// chunk's base64 (43692 characters) and its frame fit MaxFrameSize.
	BlobChunkSize = 32 << 10
	// BlobIDLen is the length of a blob id: 32 lowercase hex characters.
	BlobIDLen = 32
	// BlobCapabilitySize is the size of a blob capability (HMAC-SHA256).
	BlobCapabilitySize = 32
	// BlobDigestSize is the size of a blob digest (SHA-256).
	BlobDigestSize = 32
	// BlobCRC32CSize is the size of a blob's CRC-32C (Castagnoli), big-endian.
	BlobCRC32CSize = 4
	// MaxBlobRecipients bounds a blob's declared fetch count.
	MaxBlobRecipients = 1024
)

// BlobSizeAllowed reports whether a blob of size bytes fits a relay's max_blob_bytes:
// the limit names the largest file, and a sealed file (ratchet/STREAM.md) is larger by
// 16 bytes per 64 KiB chunk, so the relay allows that much more (max/4096 + 16).
func BlobSizeAllowed(size, max int64) bool { return size <= max+max/4096+16 }

// BlobChunks is the number of chunks of a blob of size bytes (an empty blob has none):
// ⌈size / BlobChunkSize⌉, for every size up to the largest int64 (no sum to overflow).
func BlobChunks(size int64) int64 {
	n := size / BlobChunkSize
	if size%BlobChunkSize > 0 {
		n++
	}
	return n
}

// Frame is one protocol message in either direction. Only the fields that belong to
// its Type are set; []byte fields travel as standard base64 (encoding/json's default).
// PROTOCOL.md lists which fields each type carries.
type Frame struct {
	Type string `json:"type"`
	ID   uint64 `json:"id,omitempty"`

	// hello
	Version   int          `json:"version,omitempty"`
	Versions  []int        `json:"versions,omitempty"`
	RelayKey  []byte       `json:"relay_key,omitempty"`
	Challenge []byte       `json:"challenge,omitempty"`
	Limits    *FrameLimits `json:"limits,omitempty"`
	// ChannelBinding is the relay's binding mode (BindingTLSExporter, BindingNone,
	// BindingTLSTerminatedUpstream); the hello's Signature covers the binding value.
	ChannelBinding string `json:"channel_binding,omitempty"`
	// Registration is the relay's registration policy ("open", "invite", "closed"),
	// announced in its hello so onboarding can ask for an invite code up front.
	Registration string `json:"registration,omitempty"`

	// identity and authentication
	Name      string `json:"name,omitempty"`
	CardID    string `json:"card_id,omitempty"`
	Card      string `json:"card,omitempty"`      // ratchet.Card.Export() text
	Signature []byte `json:"signature,omitempty"` // login: the key proof; hello (relay): the relay's proof
	Invite    string `json:"invite,omitempty"`    // register: an invite code (PROTOCOL.md "Limits and abuse")

	// prekeys
	PreKeys       [][]byte       `json:"prekeys,omitempty"` // ratchet.PublicPreKey.MarshalBinary()
	Counts        map[string]int `json:"counts,omitempty"`
	OneTimeIDs    []uint32       `json:"one_time_ids,omitempty"`
	KEMOneTimeIDs []uint32       `json:"kem_one_time_ids,omitempty"`
	Bundle        []byte         `json:"bundle,omitempty"` // ratchet.Bundle.MarshalBinary()

	// messages
	To         string  `json:"to,omitempty"`
	Body       []byte  `json:"body,omitempty"`
	ClientID   string  `json:"client_id,omitempty"`
	TTL        int64   `json:"ttl,omitempty"` // seconds
	MsgID      int64   `json:"msg_id,omitempty"`
	Duplicate  bool    `json:"duplicate,omitempty"`
	IDs        []int64 `json:"ids,omitempty"`
	From       string  `json:"from,omitempty"`
	FromCardID string  `json:"from_card_id,omitempty"`
	ReceivedAt int64   `json:"received_at,omitempty"` // unix milliseconds

	// operations: delete_account's signing time (unix seconds); the hello's
	// key_rotations (KeyRotation.MarshalBinary each)
	Time         int64    `json:"time,omitempty"`
	KeyRotations [][]byte `json:"key_rotations,omitempty"`

	// identity recovery: the proof of a recovery code (register, recover,
	// set_recovery) and of the code that replaces it (recover); RecoveryProofSize each
	Recovery    []byte `json:"recovery,omitempty"`
	NewRecovery []byte `json:"new_recovery,omitempty"`
	// blobs: blob_begin's size, chunk count and recipients; blob_put's index and data;
	// blob_commit's crc32c or digest; blob_get's and blob_done's capability; the relay's answers
	// carry blob_id, next (the first chunk it lacks) and expires_at (unix milliseconds)
	BlobID     string `json:"blob_id,omitempty"`
	Size       int64  `json:"size,omitempty"`
	Chunks     int64  `json:"chunks,omitempty"`
	Recipients int    `json:"recipients,omitempty"`
	Index      int64  `json:"index,omitempty"`
	Data       []byte `json:"data,omitempty"`
	Digest     []byte `json:"digest,omitempty"`
	CRC32C     []byte `json:"crc32c,omitempty"`
	Capability []byte `json:"capability,omitempty"`
	// blob_get's count (1 to BlobRunChunks): answer with one binary blob chunk
	// message of up to count chunks; 0 or absent: a blob_chunk JSON frame of one
	Count     int64 `json:"count,omitempty"`
	Next      int64 `json:"next,omitempty"`
	ExpiresAt int64 `json:"expires_at,omitempty"`

	// card lookup by ID: the relay's card answer to lookup_card marks a card that
	// replace_card or recover replaced (PROTOCOL.md "Card lookup by ID")
	Replaced bool `json:"replaced,omitempty"`

	// error
	Code         string `json:"code,omitempty"`
	Message      string `json:"message,omitempty"`
	Limit        string `json:"limit,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

// FrameLimits are the relay's limits, announced in its hello so clients can stay
// inside them.
type FrameLimits struct {
	MaxFrameBytes    int   `json:"max_frame_bytes"`
	MaxBodyBytes     int   `json:"max_body_bytes"`
	MaxQueueCount    int   `json:"max_queue_count"`
	MaxQueueBytes    int64 `json:"max_queue_bytes"`
	MaxTTLSeconds    int64 `json:"max_ttl_seconds"`
	FramesPerSecond  int   `json:"frames_per_second"`
	FrameBurst       int   `json:"frame_burst"`
	MaxOneTimePreKey int   `json:"max_one_time_prekeys"`
	// TextBytesPerSecond and TextByteBurst: the bytes of text messages a connection may
	// send a second, and their burst, counting every text message but those in the
	// compact layout (PROTOCOL.md "Text bytes"); absent: no such limit announced.
	TextBytesPerSecond int `json:"text_bytes_per_second,omitempty"`
	TextByteBurst      int `json:"text_byte_burst,omitempty"`
	// AckIDsPerSecond and AckIDBurst: the ids a connection may name in acks a second,
	// and their burst, beyond one per message delivered to it (PROTOCOL.md "Limits
	// and abuse"); absent: no such limit announced.
	AckIDsPerSecond int `json:"ack_ids_per_second,omitempty"`
	AckIDBurst      int `json:"ack_id_burst,omitempty"`
	// FramesPerMessage: the most WebSocket frames one message may come in; absent: not
	// announced.
	FramesPerMessage int   `json:"frames_per_message,omitempty"`
	MaxBlobBytes     int64 `json:"max_blob_bytes,omitempty"` // PROTOCOL.md "Blobs"; 0: the relay stores no blobs
	// BlobRunChunks: the relay takes binary blob messages of up to this many chunks
	// (PROTOCOL.md "Binary chunk messages"); 0 or absent: JSON blob frames only.
	BlobRunChunks int `json:"blob_run_chunks,omitempty"`
	// BlobCRC32C: the relay checks an upload's CRC-32C at blob_commit (PROTOCOL.md
	// "Blobs"); false or absent: only its SHA-256 digest.
	BlobCRC32C bool `json:"blob_crc32c,omitempty"`
	// QuietAcks: the relay takes acks without an id and sends them no ok (PROTOCOL.md
	// "ack"); false or absent: every ack needs an id.
	QuietAcks bool `json:"quiet_acks,omitempty"`
}

// FrameError is what DecodeFrame returns for input it refuses: Code is the protocol
// error code to answer with (one of CodeBadFrame, CodeUnknownType, CodeBadField,
// CodeFrameTooLarge), Field names the offending field when there is one, and Limit is
// the limit the error frame names (its "limit"), when there is one.
type FrameError struct {
	Code   string
	Field  string
	Reason string
	Limit  string
}

// LimitMaxFrameBytes names the frame size limit (MaxFrameSize, the hello's
// max_frame_bytes) in error frames: a frame over it is refused with frame_too_large
// and this limit, as is a binary message over MaxBlobMessageSize.
const LimitMaxFrameBytes = "max_frame_bytes"

// LimitMaxBodyBytes names the message body limit (MaxBodySize) in error frames: a send
// whose body is over it is refused with frame_too_large and this limit.
const LimitMaxBodyBytes = "max_body_bytes"

func (e *FrameError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("relay frame: %s: field %q: %s", e.Code, e.Field, e.Reason)
	}
	return fmt.Sprintf("relay frame: %s: %s", e.Code, e.Reason)
}

// Field presence bits, used to refuse fields that do not belong to a frame's type.
type fieldSet uint32

const (
	fVersion fieldSet = 1 << iota
	fVersions
	fName
	fCardID
	fCard
	fSignature
	fPreKeys
	fTo
	fBody
	fClientID
	fTTL
	fIDs
	fInvite
	fTime
	fRecovery
	fNewRecovery
	// blobs
	fBlobID
	fSize
	fChunks
	fRecipients
	fIndex
	fData
	fDigest
	fCRC32C
	fCapability
	fCount
	fServerOnly // any field only the relay sends
)

var fieldNames = map[fieldSet]string{
	fVersion: "version", fVersions: "versions", fName: "name", fCardID: "card_id",
	fCard: "card", fSignature: "signature", fPreKeys: "prekeys",
	fTo: "to", fBody: "body", fClientID: "client_id", fTTL: "ttl", fIDs: "ids", fInvite: "invite",
	fTime: "time", fRecovery: "recovery", fNewRecovery: "new_recovery",
	fBlobID: "blob_id", fSize: "size", fChunks: "chunks", fRecipients: "recipients", fIndex: "index",
	fData: "data", fDigest: "digest", fCRC32C: "crc32c", fCapability: "capability", fCount: "count",
}

type frameRule struct {
	required fieldSet
	optional fieldSet
	needID   bool
}

// clientFrames is the grammar of frames a client may send.
var clientFrames = map[string]frameRule{
	TypeHello:         {required: fVersions, needID: true},
	TypeRegister:      {required: fCard, optional: fInvite | fRecovery, needID: true},
	TypeLogin:         {required: fCardID | fSignature, needID: true},
	TypeLogoutAll:     {needID: true},
	TypeLookup:        {required: fName, needID: true},
	TypeUploadPreKeys: {required: fPreKeys, needID: true},
	TypePreKeyStatus:  {needID: true},
	TypeFetchBundle:   {required: fName, needID: true},
	TypeReplaceCard:   {required: fCard, needID: true},
	TypeSend:          {required: fTo | fBody | fClientID, optional: fTTL, needID: true},
	TypeAck:           {required: fIDs}, // no id: a quiet ack, never answered ok
	TypePing:          {needID: true},
	TypeDeleteAccount: {required: fCardID | fSignature | fTime, needID: true},
	TypeBlock:         {required: fName, needID: true},
	TypeUnblock:       {required: fName, needID: true},
	TypeRecover:       {required: fCard | fRecovery | fNewRecovery, needID: true},
	TypeSetRecovery:   {required: fRecovery, needID: true},
	TypeLookupCard:    {required: fCardID, needID: true},
	// Blobs. size, index may be 0 (JSON 0 or absent: the same); an empty blob's
	// chunks is 0 too.
	TypeBlobBegin:  {required: fRecipients, optional: fSize | fChunks, needID: true},
	TypeBlobResume: {required: fBlobID, needID: true},
	TypeBlobPut:    {required: fBlobID, optional: fIndex | fData, needID: true},
	TypeBlobCommit: {required: fBlobID, optional: fCRC32C | fDigest, needID: true}, // one of the two: validateBlobFields
	TypeBlobGet:    {required: fBlobID | fCapability, optional: fIndex | fCount, needID: true},
	TypeBlobDone:   {required: fBlobID | fCapability, needID: true},
}

// Per-field bounds the decoder enforces before anything else looks at a frame.
const (
	maxNameLen     = 64 // names are validated precisely later; this only bounds the work
	maxCardIDLen   = 64 // hex SHA-256
	maxClientIDLen = 64 // opaque to the relay
	maxCardLen     = 16 << 10
	maxVersions    = 16
	maxInviteLen   = 128
)

// MaxBlocks is how many names one name may block on a relay (PROTOCOL.md "Blocking").
const MaxBlocks = 1000

// Per-frame bounds a client must respect when it splits its requests.
const (
	MaxPreKeysPerFrame = 210 // 100 one-time of each kind plus the signed ones, with room
	MaxAckIDs          = 1024
)

func (f *Frame) present() fieldSet {
	var s fieldSet
	if f.Version != 0 {
		s |= fVersion
	}
	if f.Versions != nil {
		s |= fVersions
	}
	if f.Name != "" {
		s |= fName
	}
	if f.CardID != "" {
		s |= fCardID
	}
	if f.Card != "" {
		s |= fCard
	}
	if f.Signature != nil {
		s |= fSignature
	}
	if f.PreKeys != nil {
		s |= fPreKeys
	}
	if f.To != "" {
		s |= fTo
	}
	if f.Body != nil {
		s |= fBody
	}
	if f.ClientID != "" {
		s |= fClientID
	}
	if f.TTL != 0 {
		s |= fTTL
	}
	if f.IDs != nil {
		s |= fIDs
	}
	if f.Invite != "" {
		s |= fInvite
	}
	if f.Time != 0 {
		s |= fTime
	}
	if f.KeyRotations != nil {
		s |= fServerOnly
	}
	if f.Recovery != nil {
		s |= fRecovery
	}
	if f.NewRecovery != nil {
		s |= fNewRecovery
	}
	if f.Registration != "" {
		s |= fServerOnly
	}
	if f.BlobID != "" {
		s |= fBlobID
	}
	if f.Size != 0 {
		s |= fSize
	}
	if f.Chunks != 0 {
		s |= fChunks
	}
	if f.Recipients != 0 {
		s |= fRecipients
	}
	if f.Index != 0 {
		s |= fIndex
	}
	if f.Data != nil {
		s |= fData
	}
	if f.Digest != nil {
		s |= fDigest
	}
	if f.CRC32C != nil {
		s |= fCRC32C
	}
	if f.Capability != nil {
		s |= fCapability
	}
	if f.Count != 0 {
		s |= fCount
	}
	if f.Next != 0 || f.ExpiresAt != 0 {
		s |= fServerOnly
	}
	if f.Replaced {
		s |= fServerOnly
	}
	if f.RelayKey != nil || f.Challenge != nil || f.Limits != nil || f.ChannelBinding != "" ||
		f.Counts != nil || f.OneTimeIDs != nil || f.KEMOneTimeIDs != nil || f.Bundle != nil ||
		f.MsgID != 0 || f.Duplicate || f.From != "" || f.FromCardID != "" || f.ReceivedAt != 0 ||
		f.Code != "" || f.Message != "" || f.Limit != "" || f.RetryAfterMS != 0 {
		s |= fServerOnly
	}
	return s
}

// DecodeFrame parses one client frame strictly: valid JSON holding exactly one object,
// no unknown fields, no fields that do not belong to the type, every required field
// present and within bounds. It never panics; every refusal is a *FrameError whose
// Code is the error code to answer with. When the refusal happens after the id was
// read, the returned id lets the caller answer the request it belongs to.
func DecodeFrame(b []byte) (Frame, error) {
	if len(b) > MaxFrameSize {
		return Frame{}, &FrameError{Code: CodeFrameTooLarge, Reason: "frame is larger than " + strconv.Itoa(MaxFrameSize) + " bytes"}
	}
	if f, ok, err := DecodeFrameFast(b); ok {
		return f, err
	}
	return decodeFrameJSON(b)
}

// DecodeFrameFast decodes b as DecodeFrame does when it is a send, ack or blob_put
// frame in the canonical layout EncodeFrame writes, which it reads at the cost of a
// copy. ok false says it is not: DecodeFrame's general path, encoding/json's, is the
// one that can read it, at about 20 µs a KiB.
func DecodeFrameFast(b []byte) (f Frame, ok bool, err error) {
	if len(b) > MaxFrameSize {
		return Frame{}, false, nil
	}
	fast, ok := fastDecodeSend(b)
	if !ok {
		fast, ok = fastDecodeAck(b)
	}
	if !ok {
		fast, ok = fastDecodeBlobPut(b)
	}
	if !ok {
		return Frame{}, false, nil
	}
	if err := validateClientFrame(&fast); err != nil {
		return Frame{ID: fast.ID, Type: fast.Type}, true, err
	}
	return fast, true, nil
}

// DecodeFrameGeneral is DecodeFrame without the fast paths: for a frame
// DecodeFrameFast has said it cannot read, which would only try them again.
func DecodeFrameGeneral(b []byte) (Frame, error) {
	if len(b) > MaxFrameSize {
		return Frame{}, &FrameError{Code: CodeFrameTooLarge, Reason: "frame is larger than " + strconv.Itoa(MaxFrameSize) + " bytes"}
	}
	return decodeFrameJSON(b)
}

// decodeFrameJSON is DecodeFrame's general path, apart so that the frame it decodes
// into (which encoding/json makes escape) is not allocated on the fast path.
//
//go:noinline
func decodeFrameJSON(b []byte) (Frame, error) {
	var f Frame
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		fe := jsonError(err)
		if fe.Code == CodeBadFrame && fe.Field == "" {
			return Frame{}, fe // not a JSON object: no id can be read
		}
		return refused(b, &f, fe)
	}
	if _, err := dec.Token(); err != io.EOF {
		return refused(b, &f, &FrameError{Code: CodeBadFrame, Reason: "trailing data after the JSON object"})
	}
	if fe := checkKeys(b); fe != nil { // duplicate keys, keys matching only without case
		return refused(b, &f, fe)
	}
	if err := validateClientFrame(&f); err != nil {
		return Frame{ID: f.ID, Type: f.Type}, err
	}
	return f, nil
}

// refused is what decodeFrameJSON returns for a JSON object it refuses with fe: the
// id its error carries (PeekID: encoding/json keeps an earlier id where a later one
// is null or of the wrong type, and a repeated key is refused only after decoding),
// and the type's own error in place of fe, whatever the fields (PROTOCOL.md, Frames:
// the order of checks): bad_frame without a type, unknown_type for one that is not a
// client frame's, so that a client can tell a frame this relay does not have from a
// field it got wrong.
func refused(b []byte, f *Frame, fe *FrameError) (Frame, error) {
	out := Frame{ID: PeekID(b), Type: f.Type}
	switch _, known := clientFrames[f.Type]; {
	case f.Type == "" && fe.Field != "type": // "type" absent, null or ""; not of another JSON type
		return out, &FrameError{Code: CodeBadFrame, Field: "type", Reason: "missing frame type"}
	case f.Type != "" && !known:
		return out, &FrameError{Code: CodeUnknownType, Field: "type", Reason: "unknown frame type " + strconv.Quote(truncate(f.Type, 32))}
	}
	return out, fe
}

func jsonError(err error) *FrameError {
	var typeErr *json.UnmarshalTypeError
	var synErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &FrameError{Code: CodeBadFrame, Reason: "a frame must be a JSON object"}
		}
		return &FrameError{Code: CodeBadField, Field: field, Reason: "wrong type: want " + typeErr.Type.String()}
	case errors.As(err, &synErr):
		return &FrameError{Code: CodeBadFrame, Reason: "malformed JSON at offset " + strconv.FormatInt(synErr.Offset, 10)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &FrameError{Code: CodeBadFrame, Reason: "empty or truncated JSON"}
	}
	// encoding/json reports unknown fields and bad base64 as plain errors.
	msg := err.Error()
	const unknown = "json: unknown field "
	if len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
		name, uerr := strconv.Unquote(msg[len(unknown):])
		if uerr != nil {
			name = msg[len(unknown):]
		}
		return &FrameError{Code: CodeBadField, Field: name, Reason: "unknown field"}
	}
	return &FrameError{Code: CodeBadField, Reason: "undecodable value: " + truncate(msg, 120)}
}

func validateClientFrame(f *Frame) error {
	if f.Type == "" {
		return &FrameError{Code: CodeBadFrame, Field: "type", Reason: "missing frame type"}
	}
	rule, ok := clientFrames[f.Type]
	if !ok {
		return &FrameError{Code: CodeUnknownType, Field: "type", Reason: "unknown frame type " + strconv.Quote(truncate(f.Type, 32))}
	}
	if rule.needID && f.ID == 0 {
		return &FrameError{Code: CodeBadField, Field: "id", Reason: "a request needs a non-zero id"}
	}
	have := f.present()
	if have&fServerOnly != 0 {
		return &FrameError{Code: CodeBadField, Reason: "frame carries a field only the relay may send"}
	}
	if extra := have &^ (rule.required | rule.optional); extra != 0 {
		return &FrameError{Code: CodeBadField, Field: firstField(extra), Reason: "field does not belong to a " + f.Type + " frame"}
	}
	if missing := rule.required &^ have; missing != 0 {
		return &FrameError{Code: CodeBadField, Field: firstField(missing), Reason: "required field is missing or empty"}
	}
	switch {
	case len(f.Versions) > maxVersions:
		return &FrameError{Code: CodeBadField, Field: "versions", Reason: "too many versions"}
	case len(f.Name) > maxNameLen:
		return &FrameError{Code: CodeBadField, Field: "name", Reason: "name too long"}
	case len(f.To) > maxNameLen:
		return &FrameError{Code: CodeBadField, Field: "to", Reason: "name too long"}
	case len(f.CardID) > maxCardIDLen:
		return &FrameError{Code: CodeBadField, Field: "card_id", Reason: "card id too long"}
	case len(f.Card) > maxCardLen:
		return &FrameError{Code: CodeBadField, Field: "card", Reason: "card too long"}
	case len(f.Invite) > maxInviteLen:
		return &FrameError{Code: CodeBadField, Field: "invite", Reason: "invite code longer than " + strconv.Itoa(maxInviteLen) + " bytes"}
	case len(f.ClientID) > maxClientIDLen:
		return &FrameError{Code: CodeBadField, Field: "client_id", Reason: "client id longer than " + strconv.Itoa(maxClientIDLen) + " bytes"}
	case len(f.PreKeys) > MaxPreKeysPerFrame:
		return &FrameError{Code: CodeBadField, Field: "prekeys", Reason: "too many prekeys in one frame"}
	case len(f.IDs) > MaxAckIDs:
		return &FrameError{Code: CodeBadField, Field: "ids", Reason: "more than " + strconv.Itoa(MaxAckIDs) + " ids in one ack"}
	case f.TTL < 0:
		return &FrameError{Code: CodeBadField, Field: "ttl", Reason: "negative ttl"}
	case f.Time < 0:
		return &FrameError{Code: CodeBadField, Field: "time", Reason: "negative time"}
	case f.Recovery != nil && len(f.Recovery) != RecoveryProofSize:
		return &FrameError{Code: CodeBadField, Field: "recovery", Reason: "a recovery proof is " + strconv.Itoa(RecoveryProofSize) + " bytes"}
	case f.NewRecovery != nil && len(f.NewRecovery) != RecoveryProofSize:
		return &FrameError{Code: CodeBadField, Field: "new_recovery", Reason: "a recovery proof is " + strconv.Itoa(RecoveryProofSize) + " bytes"}
	}
	if err := validateBlobFields(f); err != nil {
		return err
	}
	if f.Type == TypeSend && len(f.Body) == 0 {
		return &FrameError{Code: CodeBadField, Field: "body", Reason: "empty body"}
	}
	if len(f.Body) > MaxBodySize {
		return &FrameError{Code: CodeFrameTooLarge, Field: "body", Limit: LimitMaxBodyBytes, Reason: "body over " + strconv.Itoa(MaxBodySize) + " bytes"}
	}
	for _, id := range f.IDs {
		if id <= 0 {
			return &FrameError{Code: CodeBadField, Field: "ids", Reason: "message ids are positive"}
		}
	}
	return nil
}

func firstField(s fieldSet) string {
	for bit := fieldSet(1); bit < fServerOnly; bit <<= 1 {
		if s&bit != 0 {
			return fieldNames[bit]
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// MaxServerFrameSize is the largest frame a client accepts from the relay: a little
// over MaxFrameSize, for a newer relay's extra fields.
const MaxServerFrameSize = MaxFrameSize + 4096

// DecodeServerFrame parses a frame from the relay. It is lenient about fields it does
// not know (a newer relay may add some) but still never panics.
func DecodeServerFrame(b []byte) (Frame, error) {
	if len(b) > MaxServerFrameSize {
		return Frame{}, &FrameError{Code: CodeFrameTooLarge, Reason: "frame from relay is too large"}
	}
	if fast, ok := fastDecodeDeliver(b); ok {
		return fast, checkServerNames(&fast)
	}
	if fast, ok := fastDecodeAccepted(b); ok {
		return fast, nil
	}
	if fast, ok := fastDecodeOK(b); ok {
		return fast, nil
	}
	if fast, ok := fastDecodeBlobChunk(b); ok {
		return fast, nil
	}
	f, err := decodeServerFrameJSON(b)
	if err != nil {
		return f, err
	}
	return f, checkServerNames(&f)
}

// checkServerNames refuses a frame from the relay whose names or card IDs are not
// ones the protocol allows: a client shows them (a deliver's from names a sender on
// the user's terminal), and a relay is not trusted with what reaches it, escape
// sequences least of all.
func checkServerNames(f *Frame) error {
	for _, n := range [...]struct{ field, v string }{{"from", f.From}, {"name", f.Name}} {
		if n.v != "" || (n.field == "from" && f.Type == TypeDeliver) {
			if err := ratchet.ValidateName(n.v); err != nil {
				return &FrameError{Code: CodeBadField, Field: n.field, Reason: "not a name: " + strconv.QuoteToASCII(truncate(n.v, 40))}
			}
		}
	}
	for _, id := range [...]struct{ field, v string }{{"from_card_id", f.FromCardID}, {"card_id", f.CardID}} {
		if id.v != "" || (id.field == "from_card_id" && f.Type == TypeDeliver) {
			if !ValidCardID(id.v) {
				return &FrameError{Code: CodeBadField, Field: id.field, Reason: "not a card ID: " + strconv.QuoteToASCII(truncate(id.v, 70))}
			}
		}
	}
	return nil
}

// ValidCardID reports whether s is a card ID: 64 lower-case hex characters
// (ratchet/SPEC.md §6.2).
func ValidCardID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

//go:noinline
func decodeServerFrameJSON(b []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return f, jsonError(err)
	}
	if f.Type == "" {
		return f, &FrameError{Code: CodeBadFrame, Field: "type", Reason: "missing frame type"}
	}
	f.Code, f.Message, f.Limit = displayText(f.Code), displayText(f.Message), displayText(f.Limit)
	return f, nil
}

// maxDisplayText bounds the relay's words a client shows (an error's message: a
// line of text).
const maxDisplayText = 1024

// displayText makes a relay's words (an error's code, message and limit) safe to
// show: they end up on the user's terminal — in an error the CLI prints, in the UI's
// status line — and a relay is not trusted with it. Control characters (escape
// sequences, CR and LF, which could draw over or forge other lines) and invalid UTF-8
// become U+FFFD, and the text is cut to at most maxDisplayText bytes, "…" included.
func displayText(s string) string {
	if len(s) <= maxDisplayText && utf8.ValidString(s) && !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s { // invalid UTF-8 comes as utf8.RuneError
		if isControl(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	t := b.String()
	if len(t) <= maxDisplayText {
		return t
	}
	cut := maxDisplayText - len("…")
	for !utf8.RuneStart(t[cut]) {
		cut--
	}
	return t[:cut] + "…"
}

// isControl reports a C0 or C1 control character or DEL.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// EncodeFrame renders a frame as JSON. The relay's hot frames (deliver, accepted, ok)
// have hand-written encoders; see AppendDeliver, AppendAccepted and AppendOK.
func EncodeFrame(f *Frame) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		// Frame holds only strings, numbers, slices and maps of those: Marshal cannot fail.
		panic("relay: encoding a frame: " + err.Error())
	}
	return b
}

// AppendDeliver encodes a deliver push without reflection: it is the relay's hottest
// frame.
func AppendDeliver(b []byte, msgID int64, from, fromCardID string, receivedAtMS int64, body []byte) []byte {
	b = append(b, `{"type":"deliver","msg_id":`...)
	b = strconv.AppendInt(b, msgID, 10)
	b = append(b, `,"from":`...)
	b = appendJSONString(b, from)
	b = append(b, `,"from_card_id":`...)
	b = appendJSONString(b, fromCardID)
	b = append(b, `,"received_at":`...)
	b = strconv.AppendInt(b, receivedAtMS, 10)
	b = append(b, `,"body":"`...)
	b = base64.StdEncoding.AppendEncode(b, body)
	b = append(b, `"}`...)
	return b
}

// AppendAccepted encodes the answer to a send.
func AppendAccepted(b []byte, reqID uint64, msgID int64, duplicate bool) []byte {
	b = append(b, `{"type":"accepted","id":`...)
	b = strconv.AppendUint(b, reqID, 10)
	b = append(b, `,"msg_id":`...)
	b = strconv.AppendInt(b, msgID, 10)
	if duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	b = append(b, '}')
	return b
}

// appendJSONString quotes s as a JSON string, escaping what JSON requires and
// replacing invalid UTF-8, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // cannot fail for a string
	return append(b, q...)
}

// PreKeyKindNames are the names of the prekey kinds in the counts maps of
// prekey_status and low_prekeys frames. Read only.
var PreKeyKindNames = map[ratchet.PreKeyKind]string{
	ratchet.SignedPreKey:  "signed",
	ratchet.OneTimePreKey: "one_time",
	ratchet.KEMLastResort: "kem_last_resort",
	ratchet.KEMOneTime:    "kem_one_time",
}

// validateBlobFields bounds the blob frames' fields (PROTOCOL.md "Blobs").
func validateBlobFields(f *Frame) error {
	switch {
	case f.BlobID != "" && !ValidBlobID(f.BlobID):
		return &FrameError{Code: CodeBadField, Field: "blob_id", Reason: "a blob id is " + strconv.Itoa(BlobIDLen) + " lowercase hex characters"}
	case f.Size < 0:
		return &FrameError{Code: CodeBadField, Field: "size", Reason: "negative size"}
	case f.Chunks != BlobChunks(f.Size) && f.Type == TypeBlobBegin:
		return &FrameError{Code: CodeBadField, Field: "chunks", Reason: "chunks must be ceil(size / " + strconv.Itoa(BlobChunkSize) + ")"}
	case f.Type == TypeBlobBegin && (f.Recipients < 1 || f.Recipients > MaxBlobRecipients):
		return &FrameError{Code: CodeBadField, Field: "recipients", Reason: "recipients must be 1 to " + strconv.Itoa(MaxBlobRecipients)}
	case f.Index < 0:
		return &FrameError{Code: CodeBadField, Field: "index", Reason: "negative index"}
	case f.Count < 0 || f.Count > BlobRunChunks:
		return &FrameError{Code: CodeBadField, Field: "count", Reason: "count must be 1 to " + strconv.Itoa(BlobRunChunks)}
	case len(f.Data) > BlobChunkSize:
		return &FrameError{Code: CodeBadField, Field: "data", Reason: "chunk over " + strconv.Itoa(BlobChunkSize) + " bytes"}
	case f.Type == TypeBlobPut && len(f.Data) == 0:
		return &FrameError{Code: CodeBadField, Field: "data", Reason: "empty chunk"}
	case f.Digest != nil && len(f.Digest) != BlobDigestSize:
		return &FrameError{Code: CodeBadField, Field: "digest", Reason: "a digest is " + strconv.Itoa(BlobDigestSize) + " bytes"}
	case f.CRC32C != nil && len(f.CRC32C) != BlobCRC32CSize:
		return &FrameError{Code: CodeBadField, Field: "crc32c", Reason: "a crc32c is " + strconv.Itoa(BlobCRC32CSize) + " bytes"}
	case f.Type == TypeBlobCommit && f.CRC32C == nil && f.Digest == nil:
		return &FrameError{Code: CodeBadField, Field: "crc32c", Reason: "blob_commit carries the blob's crc32c (or, from older clients, its SHA-256 digest)"}
	case f.Type == TypeBlobCommit && f.CRC32C != nil && f.Digest != nil:
		return &FrameError{Code: CodeBadField, Field: "digest", Reason: "blob_commit carries crc32c or digest, not both"}
	case f.Capability != nil && len(f.Capability) != BlobCapabilitySize:
		return &FrameError{Code: CodeBadField, Field: "capability", Reason: "a capability is " + strconv.Itoa(BlobCapabilitySize) + " bytes"}
	}
	return nil
}

// ValidBlobID reports whether id has the form of a blob id: BlobIDLen lowercase hex
// characters.
func ValidBlobID(id string) bool {
	if len(id) != BlobIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
