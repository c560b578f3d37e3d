// Package chat is the SecureChat controller: it initializes an identity against a relay,
// keeps one-time prekeys published, starts and loads Double Ratchet sessions per contact,
// and sends and receives messages with delivery receipts. It is a library first: the
// terminal UI and headless device programs use it the same way.
//
// # Getting a controller
//
// A Profile is a directory holding the sealed client store. Profile.Create makes an
// identity (Ed25519 + X25519), registers its card with the relay (which signs it), pins
// the relay's key, publishes prekeys and returns a connected *Controller; Profile.Open
// unlocks an existing profile with its passphrase. Programs that manage their own
// store call New(Preferences) and then Initialize.
//
// A profile has one owner at a time: every Profile opener (Create, Open, NewController,
// OpenStore) takes the profile's exclusive lock (package profile's AcquireLock, a flock
// on pfschat.lock) and the controller's Close gives it back; a second opener gets a
// *profile.LockedError naming the holder and changes nothing. Other programs reach an
// open profile through its owner's API (package pfschat/chat/daemon).
//
//	c, err := chat.Profile{Dir: dir}.Open(ctx, passphrase)
//	defer c.Close()
//	c.AddContact(ctx, "bob")         // fetch + verify bob's card, trust on first use
//	m, err := c.Send(ctx, "bob", "hi") // committed at once, state Pending
//	for ev := range c.Events() { ... } // MessageReceived, DeliveryChanged, ...
//
// # What it guarantees
//
// Nothing is lost: Send commits the message, the advanced ratchet state and the outbox
// entry in one transaction before anything leaves; the outbox drains in order whenever
// the relay is reachable (pending → sent → delivered → read, or failed with the relay's
// reason). An incoming message is decrypted on a copy of the session, committed with the
// relay's id in one transaction, and only then acked, so a crash at any point neither
// loses it nor shows it twice. A message that cannot be decrypted is acked and recorded
// as an undecryptable entry with its reason (and an Undecryptable event), never dropped
// and never retried forever. Replays are the exception, dropped and counted (Stats): a
// copy of a first message accepted before (recorded with its session, so it cannot
// re-create a removed one), and a message already decrypted that a relay delivers again
// under a new id (the profile remembers the ratchet header of the newest 20,000 messages
// it decrypted: the ratchet's one "already decrypted or key gone" error is told apart
// that way). A late message whose skipped key expired or was evicted is no replay: it
// is recorded as undecryptable with KeyGoneReason. Every session write is a compare-and-swap on the session's
// generation, so a second process on the profile cannot reuse a chain key
// (ErrStaleSession). Receipts go only to contacts the user wrote to or accepted; read
// receipts can be turned off (SetReadReceipts).
//
// Trust is explicit: every card and prekey bundle the relay hands out is verified (the
// owner's self signature, the pinned relay's signature, the name, and every prekey
// signature); a contact's changed identity key is flagged (ContactKeyChanged), shown
// with its new SafetyNumber, and blocks sending until AcceptKey; messages signed by the
// new key are marked Message.KeyPending (shown only behind the warning) until then.
// RejectKey keeps the trusted key instead and remembers the rejected one: its messages
// stay marked, without a new warning, until AcceptKey takes it after all. Safety numbers are
// Signal's displayable fingerprint (60 digits), identical on both sides.
//
// # Sessions
//
// Each contact card has one active session and up to four older ones, so late messages
// still decrypt. A session's messages carry its handshake until the peer answers, so a
// lost first message is recoverable. When both sides start a session at the same moment
// each keeps the one with the smaller ID, and both converge without losing a message.
// The seed's lower-level API is here too: ActiveSession, StartNewSession, LoadUpSession
// and Session.Encrypt/Decrypt (which persist the state themselves), RemoveSessions,
// GentleReset, and RotateKeys, which keeps n one-time prekeys of each kind on the relay
// and rotates the signed ones every 2 days (also run on a timer and on the relay's
// low-key notice); an initiator refuses a signed prekey older than 14 days.
//
// The plaintext inside each ratchet message is the application payload of PAYLOAD.md
// (package chat/payload): Send writes version 2 — the text with its message id and the
// per-conversation sequence number, padded to power-of-two buckets — and the receive
// path reads versions 1 and 2, ignores types it does not know, and places a late message
// by its sequence number (Message.Seq, Message.Order). MaxTextBytes is the one text limit.
package chat
