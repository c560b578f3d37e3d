package chat

import (
	"errors"
	"fmt"
	"time"

	"pfschat/storage"
)

// EventKind says what an Event reports.
type EventKind int

const (
	// MessageReceived: a new incoming message (Event.Message).
	MessageReceived EventKind = iota + 1
	// DeliveryChanged: an outgoing message moved to sent, delivered, read or failed.
	DeliveryChanged
	// ContactKeyChanged: a contact presented a new identity key; sending to them is
	// blocked until AcceptKey.
	ContactKeyChanged
	// ConnectionChanged: the relay connection changed state (Event.State).
	ConnectionChanged
	// Undecryptable: a message arrived that could not be read; it is recorded in the
	// history with the reason (Event.Message.Reason, Event.Err).
	Undecryptable
	// ContactAdded: someone new wrote to us and was added (trust on first use).
	ContactAdded
	// TransferProgress: an attachment's upload or download moved on a whole percent,
	// or ended (Event.Transfer; Event.Message once the message exists: a download's
	// always, an upload's once it is sent). transfers.go.
	TransferProgress
	// ContactChanged: the user changed a contact through the controller — muted or
	// unmuted, nicknamed, blocked or unblocked, accepted (a request, or by writing to
	// them), removed, verified, a new key accepted or rejected, added again — from this
	// process or through its owner socket (a headless 'pfschat mute NAME' while the UI
	// owns the profile). Event.Contact names them; read the contact again (Contact, or
	// Contacts: a removed one is gone, ErrUnknownContact).
	ContactChanged
	// MessagesRead: the user marked the contact's incoming messages read through the
	// controller (MarkRead, MarkReadThrough: this process's UI, or a headless 'pfschat
	// recv' or a daemon client's markRead through the owner socket), and some were
	// unread. Event.Contact names them; read the contact again for its unread count.
	MessagesRead
	// MessagesDeleted: the user deleted messages of the conversation with Event.Contact
	// from this profile (DeleteMessage: Event.Message has the deleted message's ID and
	// Contact only; ClearConversation: Event.Message is nil, every message went), from
	// this process or through its owner socket. Read the conversation again.
	MessagesDeleted
)

func (k EventKind) String() string {
	switch k {
	case MessageReceived:
		return "message-received"
	case DeliveryChanged:
		return "delivery-changed"
	case ContactKeyChanged:
		return "contact-key-changed"
	case ConnectionChanged:
		return "connection-changed"
	case Undecryptable:
		return "undecryptable"
	case ContactAdded:
		return "contact-added"
	case TransferProgress:
		return "transfer-progress"
	case ContactChanged:
		return "contact-changed"
	case MessagesRead:
		return "messages-read"
	case MessagesDeleted:
		return "messages-deleted"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one thing that happened, delivered in order on Controller.Events.
type Event struct {
	Kind    EventKind
	Contact string
	Message *Message
	State   ConnState
	Err     error
	// Transfer: a TransferProgress event's upload or download.
	Transfer *Transfer
}

// DeliveryState is where a message stands. It is the store's: one definition of the
// values, the names Stringer prints ('recv --json') and the order states move in.
type DeliveryState = storage.DeliveryState

const (
	Pending            = storage.Pending       // committed, waiting in the outbox
	Sent               = storage.Sent          // the relay accepted it (durable in the peer's queue)
	Delivered          = storage.Delivered     // the peer's device decrypted it (encrypted receipt)
	Read               = storage.Read          // the peer read it (encrypted receipt)
	Failed             = storage.Failed        // the relay refused it; Reason says why
	UndecryptableState = storage.Undecryptable // incoming message that could not be read; Reason says why
)

// Message is one entry of a conversation.
type Message struct {
	ID         int64
	Contact    string
	Outgoing   bool
	Text       string
	SentAt     time.Time // by the sender's clock
	ReceivedAt time.Time // incoming: when it was committed here
	State      DeliveryState
	Reason     string // Failed / UndecryptableState
	// Seq is the sender's per-conversation sequence number (chat/PAYLOAD.md §3); 0 for
	// an undecryptable message or one from a client before payload version 2.
	Seq uint64
	// Order is the message's place in its conversation: History returns messages by it,
	// and a late message (a lower Seq than messages that arrived before it) is placed
	// before those. Show a conversation sorted by Order.
	Order int64
	// KeyPending: an incoming message signed by the contact's new identity key, which
	// the user has not accepted. Show it only behind the key-change warning; it is not
	// from the verified contact until AcceptKey, which clears the mark.
	KeyPending bool
	// SenderCardID is the card an incoming message came from ("" for older messages).
	SenderCardID string
	// Attachment is set when the message is a file (Text is then its caption).
	Attachment *Attachment
	// Request: an incoming message from a message request, someone the user has not
	// taken as a contact (Unread and MessageReceived events set it). Writing to them
	// accepts them, as AcceptRequest does: a program that answers every message should
	// look at it first.
	Request bool

	clientID string // the store's client id (attachments are keyed by it)
}

// Contact is a person (or device) we talk to.
type Contact struct {
	Name, CardID string
	Unread       int
	LastActivity time.Time
	// Verified: the safety number of CardID was compared and confirmed.
	Verified bool
	// KeyChanged: the contact presented a new key that is not accepted yet; sending is
	// blocked until AcceptKey.
	KeyChanged bool
	// KeyRejected: the user rejected a new key of the contact's (RejectKey); its
	// messages stay marked, and AcceptKey may still take it.
	KeyRejected bool
	Fingerprint string // short fingerprint of the contact's signing key
	// Request: a stranger wrote first and the user has not accepted them yet (no
	// receipts go to them); Blocked: the user blocked them; Nickname: a local display
	// name ("" = none); Muted: no desktop notifications for them (requests.go).
	Request, Blocked bool
	Nickname         string
	Muted            bool
}

// ConnStatus is the state of the relay connection.
type ConnStatus int

const (
	Connecting ConnStatus = iota
	Online
	Reconnecting
	Offline
)

func (s ConnStatus) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Online:
		return "online"
	case Reconnecting:
		return "reconnecting"
	case Offline:
		return "offline"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// ConnState is a relay connection state with, when reconnecting, the wait until the next
// attempt and the error that ended the last one.
type ConnState struct {
	Status  ConnStatus
	RetryIn time.Duration
	Err     error
}

// Errors. Each names the condition; wrapping adds the detail.
var (
	ErrWrongPassphrase = storage.ErrWrongPassphrase
	ErrNoProfile       = errors.New("chat: no profile here")
	ErrProfileExists   = errors.New("chat: a profile already exists here")
	ErrNameTaken       = errors.New("chat: name already registered")
	ErrUnknownContact  = errors.New("chat: unknown contact")
	ErrUnknownUser     = errors.New("chat: no such user on the relay")
	ErrKeyChanged      = errors.New("chat: contact's identity key changed")
	ErrCardRejected    = errors.New("chat: card or prekey bundle failed verification")
	ErrNoPendingKey    = errors.New("chat: contact has no new key to accept or reject")
	ErrIsYou           = errors.New("chat: that name is yours")
	ErrOffline         = errors.New("chat: relay unreachable")
	ErrClosed          = errors.New("chat: controller closed")
	ErrNotInitialized  = errors.New("chat: controller not initialized")
	ErrEmptyMessage    = errors.New("chat: empty message")
	// ErrStaleSession: a ratchet step was refused at commit because another writer (a
	// second process on the profile) committed a newer state of the session first.
	// Nothing was written; no chain key was used twice.
	ErrStaleSession = storage.ErrStaleSession
	// ErrProfileDamaged: the file where the profile's store should be is empty, not a
	// database, or not a pfschat store. Restore it from a backup.
	ErrProfileDamaged = storage.ErrDamaged
	// ErrStalePreKey: a contact's prekey bundle holds a signed prekey older than
	// MaxBundlePreKeyAge; no session is started with it.
	ErrStalePreKey = errors.New("chat: the contact's signed prekey is too old")
	// ErrDiskFull: the disk holding the profile is full; nothing was written.
	ErrDiskFull = storage.ErrDiskFull
)

// Stats counts what the controller dropped or skipped on purpose, for diagnostics.
type Stats struct {
	// ReplayedFirstMessages: copies of first messages accepted before (a replay that
	// would re-create a removed session): refused and dropped, never shown.
	ReplayedFirstMessages int64
	// ReplayedMessages: messages already decrypted arriving again under a new relay id:
	// dropped silently, never stored as "undecryptable".
	ReplayedMessages int64
	// DamagedRowsSkipped: sealed rows of the store that did not open (logged).
	DamagedRowsSkipped int64
}

// RelayKeyChangedError: the relay presented a key other than the one pinned on first
// contact. Someone may be impersonating the relay; nothing is sent.
type RelayKeyChangedError struct {
	URL               string
	Pinned, Presented string // fingerprints; Presented may be empty, then Cause names it
	Cause             error
}

func (e *RelayKeyChangedError) Error() string {
	if e.Presented == "" && e.Cause != nil {
		return fmt.Sprintf("relay %s presented a key other than the one this profile pinned (on first contact, or when it followed the relay's last key rotation) (%v); "+
			"someone may be impersonating the relay", e.URL, e.Cause)
	}
	return fmt.Sprintf("relay %s presented key %s, but this profile pinned %s (on first contact, or when it followed the relay's last key rotation); "+
		"someone may be impersonating the relay", e.URL, e.Presented, e.Pinned)
}

func (e *RelayKeyChangedError) Unwrap() error { return e.Cause }

// KeyChangedError: sending to Contact is blocked because their identity key changed.
type KeyChangedError struct{ Contact string }

func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("%s's identity key changed; compare the new safety number, then accept the key", e.Contact)
}

func (e *KeyChangedError) Unwrap() error { return ErrKeyChanged }

// ErrOnlyRejectedKey: no message can be sent to a contact whose new key the user
// rejected (RejectKey) while there is no session with the key they trusted — the relay
// hands out prekeys only for the key the contact has now (*RejectedKeyOnlyError).
var ErrOnlyRejectedKey = errors.New("chat: the relay holds prekeys only for the rejected key")

// RejectedKeyOnlyError is ErrOnlyRejectedKey for Contact: nothing can be sent to them
// until their trusted key is back on the relay, or the new key is accepted (AcceptKey)
// after comparing safety numbers. Nothing was trusted or sent.
type RejectedKeyOnlyError struct{ Contact string }

func (e *RejectedKeyOnlyError) Error() string {
	return fmt.Sprintf("the relay holds prekeys only for %s's new key, which you rejected, and there is no session with the key you trusted: "+
		"nothing can be sent to %s until their trusted key is back on the relay, or until you accept the new key after comparing safety numbers; nothing was sent", e.Contact, e.Contact)
}

func (e *RejectedKeyOnlyError) Unwrap() error { return ErrOnlyRejectedKey }
