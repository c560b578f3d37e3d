package daemon

import (
	"errors"
	"fmt"
	"time"

	"pfschat/chat"
	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
)

// APIVersion is the version of the API. It stays the same through additive changes —
// new methods, notifications, members and error codes, which a client of the version
// ignores (an unknown code it reads as internal_error) — and changes only when
// something already there changes meaning (API.md).
const APIVersion = 1

// Message is a message as the API shows it.
type Message struct {
	ID         int64     `json:"id"`
	Contact    string    `json:"contact"`
	Outgoing   bool      `json:"outgoing,omitempty"`
	Text       string    `json:"text"`
	SentAt     time.Time `json:"sentAt"`
	ReceivedAt time.Time `json:"receivedAt,omitzero"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	Seq        uint64    `json:"seq,omitempty"`        // the sender's sequence number (chat/PAYLOAD.md §3)
	KeyPending bool      `json:"keyPending,omitempty"` // from a changed identity key not yet accepted
	Request    bool      `json:"request,omitempty"`    // from a message request: answering accepts them
	File       *File     `json:"file,omitempty"`       // the message is a file (attachments.go); Text is its caption
}

// FromMessage is m as the API shows it.
func FromMessage(m chat.Message) Message {
	return Message{ID: m.ID, Contact: m.Contact, Outgoing: m.Outgoing, Text: m.Text, SentAt: m.SentAt.UTC(),
		ReceivedAt: m.ReceivedAt.UTC(), State: m.State.String(), Reason: m.Reason, Seq: m.Seq, KeyPending: m.KeyPending,
		Request: m.Request, File: fromAttachment(m.Attachment)}
}

// Gap is a hole in a contact's incoming sequence as the API shows it: the contact's
// messages From..To (sequence numbers, inclusive) have not arrived, although message
// Before (a store id), which the sender wrote after them, arrived at Since, at least a
// minute ago. A gap disappears once its messages arrive.
type Gap struct {
	Contact string    `json:"contact"`
	From    uint64    `json:"from"`
	To      uint64    `json:"to"`
	Before  int64     `json:"before"`
	Since   time.Time `json:"since"`
}

// FromGap is g as the API shows it.
func FromGap(g chat.Gap) Gap {
	return Gap{Contact: g.Contact, From: g.From, To: g.To, Before: g.Before, Since: g.Since.UTC()}
}

// Contact is a contact as the API shows it.
type Contact struct {
	Name        string `json:"name"`
	CardID      string `json:"cardId"`
	Fingerprint string `json:"fingerprint"`
	Verified    bool   `json:"verified"`
	KeyChanged  bool   `json:"keyChanged"`
	KeyRejected bool   `json:"keyRejected,omitempty"`
	Unread      int    `json:"unread"`
	Request     bool   `json:"request,omitempty"`
	Blocked     bool   `json:"blocked,omitempty"`
	Nickname    string `json:"nickname,omitempty"`
	Muted       bool   `json:"muted,omitempty"`
}

// FromContact is c as the API shows it.
func FromContact(c chat.Contact) Contact {
	return Contact{Name: c.Name, CardID: c.CardID, Fingerprint: c.Fingerprint, Verified: c.Verified, KeyChanged: c.KeyChanged, KeyRejected: c.KeyRejected, Unread: c.Unread,
		Request: c.Request, Blocked: c.Blocked, Nickname: c.Nickname, Muted: c.Muted}
}

// Chat is c as package chat shows it.
func (c Contact) Chat() chat.Contact {
	return chat.Contact{Name: c.Name, CardID: c.CardID, Fingerprint: c.Fingerprint, Verified: c.Verified, KeyChanged: c.KeyChanged, KeyRejected: c.KeyRejected, Unread: c.Unread,
		Request: c.Request, Blocked: c.Blocked, Nickname: c.Nickname, Muted: c.Muted}
}

// SafetyNumber is a safety number as the API shows it: 60 digits in 12 groups of 5.
type SafetyNumber struct {
	Contact string `json:"contact"`
	CardID  string `json:"cardId"`
	Pending bool   `json:"pending"`
	Digits  string `json:"digits"`
}

// FromSafetyNumber is sn as the API shows it.
func FromSafetyNumber(sn chat.SafetyNumber) SafetyNumber {
	return SafetyNumber{Contact: sn.Contact, CardID: sn.CardID, Pending: sn.Pending, Digits: sn.Digits()}
}

// Chat is sn as package chat shows it; digits that are not 60 are refused.
func (sn SafetyNumber) Chat() (chat.SafetyNumber, error) {
	return chat.ParseSafetyNumber(sn.Contact, sn.CardID, sn.Pending, sn.Digits)
}

// The params and results of each method (API.md documents them).
type (
	NameParams struct {
		Name string `json:"name"`
	}
	SendParams struct {
		To   string `json:"to"`
		Text string `json:"text"`
		// WaitMs: how long to wait for the relay to accept (0 = answer once committed).
		WaitMs int64 `json:"waitMs,omitempty"`
	}
	SendResult struct {
		ID int64 `json:"id"`
		// State: "accepted" (the relay holds it durably) or "queued" (committed to the
		// outbox; it goes out as soon as the relay is reachable — do not send it again).
		State string `json:"state"`
	}
	MarkReadParams struct {
		Contact string `json:"contact"`
		Through int64  `json:"through"`
	}
	// DeleteMessageParams are deleteMessage's: the contact's message id (a Message's
	// "id").
	DeleteMessageParams struct {
		Contact string `json:"contact"`
		ID      int64  `json:"id"`
	}
	// ContactParams name a contact as "contact" (clearConversation's).
	ContactParams struct {
		Contact string `json:"contact"`
	}
	// ClearResult is clearConversation's: how many messages were deleted.
	ClearResult struct {
		Deleted int `json:"deleted"`
	}
	ReceiveResult struct {
		Messages []Message `json:"messages"`
	}
	SubscribeResult struct {
		Subscription int64 `json:"subscription"`
	}
	SubscriptionParams struct {
		Subscription int64 `json:"subscription"`
	}
	RotateKeysParams struct {
		Count int `json:"count"`
	}
	// GapsParams: whose gaps (a contact's name; empty: every contact's).
	GapsParams struct {
		Name string `json:"name,omitempty"`
	}
	GapsResult struct {
		Gaps []Gap `json:"gaps"`
	}
	// OneTimeKeysResult is oneTimeKeys': the one-time prekeys the relay holds now.
	OneTimeKeysResult struct {
		X25519 int `json:"x25519"`
		MLKEM  int `json:"mlkem"`
	}
	FingerprintResult struct {
		SafetyNumber
		Verified bool `json:"verified"`
		// Trusted is the safety number of the accepted key while a new one is pending.
		Trusted *SafetyNumber `json:"trusted,omitempty"`
	}
	AddContactResult struct {
		Contact      Contact      `json:"contact"`
		SafetyNumber SafetyNumber `json:"safetyNumber"`
	}
	VersionResult struct {
		Version      string `json:"version"`
		API          int    `json:"api"`
		Owner        string `json:"owner"` // "daemon" or "ui"
		Me           string `json:"me"`
		ReadReceipts bool   `json:"readReceipts"`
		Online       bool   `json:"online"`
		// Relay is the relay the owner talks to (its own setting: --relay given to a
		// command that goes through the owner does not change it); several URLs,
		// comma-separated, for a cluster.
		Relay string `json:"relay,omitempty"`
	}
	// Event is the params of every notification: the subscription it belongs to and
	// one of message / delivery / contact / connection.
	Event struct {
		Subscription int64     `json:"subscription"`
		Message      *Message  `json:"message,omitempty"`
		Contact      string    `json:"contact,omitempty"`
		ID           int64     `json:"id,omitempty"` // deleted: the message deleted (absent: the conversation was cleared)
		Status       string    `json:"status,omitempty"`
		Error        string    `json:"error,omitempty"`
		Transfer     *Transfer `json:"transfer,omitempty"` // attachments.go
	}
)

// Notification methods.
const (
	NotifyMessage    = "message"    // an incoming message (state "undecryptable" with a reason when it could not be read)
	NotifyDelivery   = "delivery"   // an outgoing message moved to sent, delivered, read or failed
	NotifyKeyChanged = "keyChanged" // a contact's identity key changed
	NotifyConnection = "connection" // the relay connection changed state
	NotifyTransfer   = "transfer"   // a file's upload or download moved on (attachments.go)
	NotifyContact    = "contact"    // a contact was changed (muted, nicknamed, blocked, removed, …): read it again
	NotifyMarkedRead = "markedRead" // a contact's messages were marked read: their unread count changed
	NotifyDeleted    = "deleted"    // a contact's message was deleted, or their conversation cleared, on this profile
)

// errorFor maps package chat's errors to the stable codes.
func errorFor(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var kc *chat.KeyChangedError
	var rk *chat.RejectedKeyOnlyError
	var pe *relay.ProtocolError
	if errors.As(err, &pe) {
		if e := relayLimit(pe); e != nil {
			return e
		}
	}
	code := CodeInternalError
	switch {
	case errors.As(err, &pe) && pe.Code == relay.CodeRateLimited:
		return rateLimited(err, pe.RetryAfter)
	case errors.As(err, &kc):
		e := NewError(CodeKeyChanged, "%v", err)
		e.Data.Contact = kc.Contact
		return e
	case errors.As(err, &rk):
		e := NewError(CodeOnlyRejectedKey, "%v; to send to %s, call fingerprint, compare the safety number with %s in person or on another channel, then acceptKey",
			err, rk.Contact, rk.Contact)
		e.Data.Contact = rk.Contact
		return e
	case errors.Is(err, chat.ErrOnlyRejectedKey): // without the contact: call names it
		code = CodeOnlyRejectedKey
	case errors.Is(err, chat.ErrStalePreKey):
		code = CodeStalePreKey
	case errors.Is(err, chat.ErrDiskFull):
		code = CodeDiskFull
	case errors.Is(err, chat.ErrUnknownContact):
		code = CodeUnknownContact
	case errors.Is(err, chat.ErrUnknownUser):
		code = CodeUnknownUser
	case errors.Is(err, chat.ErrOffline), errors.Is(err, client.ErrNotConnected), errors.Is(err, client.ErrConnectionLost):
		code = CodeOffline // also a call the relay client could not make (addContact, rotateKeys, …)
	case errors.Is(err, chat.ErrCardRejected):
		code = CodeCardRejected
	case errors.Is(err, chat.ErrNoPendingKey):
		code = CodeNoPendingKey
	case errors.Is(err, chat.ErrEmptyMessage), errors.Is(err, chat.ErrTextTooLong):
		code = CodeBadMessage
	case errors.Is(err, chat.ErrClosed):
		code = CodeClosing
	case errors.Is(err, ratchet.ErrInvalidName), errors.Is(err, chat.ErrIsYou):
		code = CodeInvalidParams
	}
	if c, ok := blockErrorCode(err); ok {
		code = c
	}
	if c, ok := fileErrorCode(err); ok { // attachments.go
		code = c
	}
	if a := advice[code]; a != "" {
		return NewError(code, "%v; %s", err, a)
	}
	return NewError(code, "%v", err)
}

// rateLimited is rate_limited for err, a refusal of the relay's that asks to wait
// retryAfter (0: it did not say): the wait, rounded up, in the message and in
// data.retryAfterMs.
func rateLimited(err error, retryAfter time.Duration) *Error {
	when := "later"
	switch secs := (retryAfter + time.Second - 1) / time.Second; {
	case retryAfter <= 0:
	case secs == 1:
		when = "in a second"
	default:
		when = fmt.Sprintf("in %d seconds", secs)
	}
	e := NewError(CodeRateLimited, "%v; try again %s", err, when)
	e.Data.RetryAfterMs = int64((retryAfter + time.Millisecond - 1) / time.Millisecond)
	return e
}

// relayLimit is the error of a refusal of the relay's over one of its limits other
// than a rate (rateLimited): the recipient's queue, the sender's file quota, the relay's
// disk, the largest file; nil for any other refusal. The relay's own message is not
// repeated: it speaks of blobs and frames, not of what the user did.
func relayLimit(pe *relay.ProtocolError) *Error {
	var e *Error
	switch pe.Code {
	case relay.CodeQueueFull:
		if pe.Limit == "sender_quota" { // relay/server.LimitSenderQuota
			e = NewError(CodeQueueFull, "the relay refused it: your share of the recipient's queue on the relay is full (its sender_quota limit), "+
				"so nothing more of yours can wait for them until they come online and fetch what waits; try again later")
			break
		}
		e = NewError(CodeQueueFull, "the relay refused it: the recipient's queue on the relay is full (its %s limit), so nothing more can wait for them "+
			"until they come online and fetch what waits; try again later", orUnnamed(pe.Limit))
	case relay.CodeBlobQuota:
		e = NewError(CodeFileQuota, "the relay refused the file: your files on it that recipients have not fetched yet would pass its quota (%s); "+
			"nothing was sent: wait until they fetch them or the files expire, then send it again", orUnnamed(pe.Limit))
	case relay.CodeStorageFull:
		e = NewError(CodeRelayFull, "the relay refused it: its disk is nearly full, and it takes no new messages or files until its operator frees space; "+
			"nothing was sent: try again later")
	case relay.CodeBlobTooLarge: // the relay's limit went down since it said it (the hello's)
		e = NewError(CodeFileTooLarge, "the relay refused the file: it is over the relay's largest file (%s); send a smaller file", orUnnamed(pe.Limit))
	default:
		return nil
	}
	e.Data.Limit = pe.Limit
	return e
}

// orUnnamed is a limit's name, or "unnamed" when the relay named none.
func orUnnamed(limit string) string {
	if limit == "" {
		return "unnamed"
	}
	return limit
}

// advice is what to do about an error of a code whose errors do not say it
// themselves, added to the message. (disk_full's do: storage names the disk and what
// to free.)
var advice = map[int]string{
	CodeFileTooLarge:   "send a smaller file",
	CodeFileUnreadable: "check the path, and that the owner's user may read the file",
	CodeNotAFile:       `give the id of a received message that has a "file"`,
	CodeFileGone:       "ask the sender to send the file again",
	CodeFileRejected:   "it was deleted; ask the sender to send the file again",
	CodeFileStalled:    "call download again later: it goes on from where it stopped",
	CodeFileFailed:     "ask the sender to send the file again",
	CodeDirUnwritable:  `give a "dir" the owner's user may create and write to; nothing was fetched`,
}

// ChatError turns an error from the daemon back into package chat's error where there
// is one, so a command prints the same advice whether it went through the owner or
// not; the *Error stays in the chain.
func ChatError(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	var base error
	switch e.Code {
	case CodeUnknownContact:
		base = chat.ErrUnknownContact
	case CodeUnknownUser:
		base = chat.ErrUnknownUser
	case CodeOffline:
		base = chat.ErrOffline
	case CodeCardRejected:
		base = chat.ErrCardRejected
	case CodeNoPendingKey:
		base = chat.ErrNoPendingKey
	case CodeBlocked:
		base = chat.ErrBlocked
	case CodeNotARequest:
		base = chat.ErrNotARequest
	case CodeStalePreKey:
		base = chat.ErrStalePreKey
	case CodeDiskFull:
		base = chat.ErrDiskFull
	case CodeFileTooLarge:
		base = chat.ErrFileTooLarge
	case CodeNoFiles:
		base = chat.ErrNoBlobs
	case CodeNotAFile:
		base = chat.ErrNotAttachment
	case CodeFileGone:
		base = chat.ErrAttachmentGone
	case CodeFileStalled:
		base = chat.ErrAttachmentStalled
	case CodeFileFailed:
		base = chat.ErrAttachmentFailed
	case CodeUnknownMessage:
		base = chat.ErrUnknownMessage
	case CodeFileUnreadable:
		base = chat.ErrFileUnreadable
	case CodeDirUnwritable:
		base = chat.ErrDownloadDir
	case CodeRateLimited: // as the relay client returns it, with the wait
		pe := &relay.ProtocolError{Code: relay.CodeRateLimited, Message: e.Message}
		if e.Data != nil {
			pe.RetryAfter = time.Duration(e.Data.RetryAfterMs) * time.Millisecond
		}
		base = pe
	case CodeKeyChanged:
		return &chatKeyChanged{KeyChangedError: chat.KeyChangedError{Contact: dataContact(e)}, rpc: e}
	case CodeOnlyRejectedKey:
		return &chatRejectedKeyOnly{RejectedKeyOnlyError: chat.RejectedKeyOnlyError{Contact: dataContact(e)}, rpc: e}
	default:
		return &message{e}
	}
	return &wrapped{base: base, rpc: e}
}

// message is an owner's refusal with no error of package chat behind it: it reads as
// the owner's sentence alone (the *Error, with its code, is what it unwraps to).
type message struct{ rpc *Error }

func (m *message) Error() string { return m.rpc.Message }
func (m *message) Unwrap() error { return m.rpc }

type wrapped struct {
	base error
	rpc  *Error
}

func (w *wrapped) Error() string   { return w.rpc.Message }
func (w *wrapped) Unwrap() []error { return []error{w.base, w.rpc} }

type chatKeyChanged struct {
	chat.KeyChangedError
	rpc *Error
}

func (k *chatKeyChanged) Unwrap() []error { return []error{&k.KeyChangedError, k.rpc} }

// chatRejectedKeyOnly reads as package chat's error (its Error, not the API's advice in
// the message), so a command gives its own advice.
type chatRejectedKeyOnly struct {
	chat.RejectedKeyOnlyError
	rpc *Error
}

func (k *chatRejectedKeyOnly) Unwrap() []error { return []error{&k.RejectedKeyOnlyError, k.rpc} }

// dataContact is the contact an error's data names ("" when none).
func dataContact(e *Error) string {
	if e.Data == nil {
		return ""
	}
	return e.Data.Contact
}
