package relay

import (
	"errors"
	"fmt"
	"time"
)

// Error codes of relay clusters (PROTOCOL.md "Relay clusters").
const (
	CodeUnavailable = "unavailable" // the relay's store cannot take the write now; nothing was stored: retry
)

// Error codes carried by error frames. PROTOCOL.md says when each is sent.
const (
	CodeBadFrame           = "bad_frame"           // not a JSON object / malformed JSON / trailing data
	CodeFrameTooLarge      = "frame_too_large"     // over MaxFrameSize
	CodeUnknownType        = "unknown_type"        // type not in the protocol
	CodeBadField           = "bad_field"           // unknown, misplaced, missing, mistyped or out-of-bounds field
	CodeUnsupportedVersion = "unsupported_version" // no common protocol version
	CodeNotLoggedIn        = "not_logged_in"       // frame needs a logged-in connection
	CodeAlreadyLoggedIn    = "already_logged_in"   // login on a logged-in connection
	CodeLoginFailed        = "login_failed"        // unknown card or bad key proof
	CodeInvalidName        = "invalid_name"        // name not [a-z0-9._-]{1,32}
	CodeNameTaken          = "name_taken"          // register: the name already has a card
	CodeBadCard            = "bad_card"            // card does not parse or verify
	CodeForbidden          = "forbidden"           // acting on something that belongs to another card
	CodeCardReplaced       = "card_replaced"       // the connection's card was replaced; connection closed
	CodeNotFound           = "not_found"           // no such name / card
	CodeNoPreKeys          = "no_prekeys"          // card has no signed or last-resort prekey on the relay
	CodeBadPreKey          = "bad_prekey"          // prekey does not parse or verify against the card
	CodeTooManyPreKeys     = "too_many_prekeys"    // would exceed the one-time prekey cap
	CodeQueueFull          = "queue_full"          // recipient queue over its count or bytes limit (see limit)
	CodeTTLTooLong         = "ttl_too_long"        // ttl over the relay's maximum
	CodeRateLimited        = "rate_limited"        // frames per second over the limit
	CodeSlowReader         = "slow_reader"         // outbound queue overflowed; connection closed
	CodeGoingAway          = "going_away"          // relay shutting down
	CodeLoggedOut          = "logged_out"          // logout_all on another connection of the card; connection closed
	CodeInternal           = "internal"            // relay-side failure; retry later

	// Abuse limits (PROTOCOL.md "Limits and abuse").
	CodeLoginTimeout       = "login_timeout"        // not logged in within the login deadline; connection closed
	CodeMessageTimeout     = "message_timeout"      // a message not whole within the message deadline; connection closed
	CodeTooManyConnections = "too_many_connections" // connection cap per address or in total; connection closed
	CodeRegistrationClosed = "registration_closed"  // the relay takes no registrations
	CodeInviteRequired     = "invite_required"      // registration needs a valid invite code
)

// Error codes of the relay's operations (accounts, relay keys, disk).
const (
	CodeStorageFull    = "storage_full"    // the relay's disk is below its high-water mark: sends refused, acks work
	CodeAccountDeleted = "account_deleted" // the connection's account was deleted (delete_account or expiry); closed
	CodeBadTime        = "bad_time"        // a signed time is too far from the relay's clock
)

// Error codes of blocking (PROTOCOL.md "Blocking").
const (
	CodeBlocked       = "blocked"         // send / fetch_bundle: the recipient blocked the sender
	CodeTooManyBlocks = "too_many_blocks" // block: the name already blocks the most names a relay keeps
)

// Error codes of identity recovery (PROTOCOL.md "Identity replacement and recovery").
const (
	CodeRecoveryFailed = "recovery_failed"      // recover: wrong code, or none set for the name; the attempt counted
	CodeNoRecovery     = "recovery_unavailable" // this relay keeps no recovery codes
)

// Error codes of blobs (PROTOCOL.md "Blobs").
const (
	CodeBlobNotFound       = "blob_not_found"       // no such blob, or not this capability, or expired, or not the uploader's
	CodeBlobTooLarge       = "blob_too_large"       // blob_begin over max_blob_bytes
	CodeBlobQuota          = "blob_quota"           // the uploader's blobs would exceed blob_quota_bytes
	CodeBlobOutOfOrder     = "blob_out_of_order"    // blob_put of another chunk than the next; next says which
	CodeBlobIncomplete     = "blob_incomplete"      // blob_commit before every chunk arrived; next says which is missing
	CodeBlobDigestMismatch = "blob_digest_mismatch" // blob_commit's crc32c or digest is not the stored bytes'; the upload is dropped
)

// ProtocolError is an error frame from the relay, as the client package returns it.
type ProtocolError struct {
	Code    string
	Message string
	Limit   string // for queue_full / rate_limited: which limit
	// RetryAfter: for rate_limited, when the frame may be sent again (the frame's
	// retry_after_ms; 0 when it has none, as the one that closes the connection).
	RetryAfter time.Duration
}

// ErrorOf is the error frame f as a ProtocolError.
func ErrorOf(f Frame) *ProtocolError {
	return &ProtocolError{Code: f.Code, Message: f.Message, Limit: f.Limit, RetryAfter: time.Duration(f.RetryAfterMS) * time.Millisecond}
}

func (e *ProtocolError) Error() string {
	if e.Limit != "" {
		return fmt.Sprintf("relay: %s (%s): %s", e.Code, e.Limit, e.Message)
	}
	return fmt.Sprintf("relay: %s: %s", e.Code, e.Message)
}

// Is lets errors.Is(err, &ProtocolError{Code: CodeQueueFull}) match on the code alone.
func (e *ProtocolError) Is(target error) bool {
	var t *ProtocolError
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}
