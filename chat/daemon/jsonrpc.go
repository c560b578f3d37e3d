package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"

	"pfschat/relay/strictjson"
)

// MaxRequestBytes is the longest request line (and HTTP request body) the server reads:
// a message of chat.MaxTextBytes, JSON-escaped, fits with room to spare.
const MaxRequestBytes = 1 << 20

// Version is the JSON-RPC version every request and response carries.
const Version = "2.0"

// Error codes. The first five are JSON-RPC 2.0's own; the others are pfschat's and are
// stable: a script may switch on them (API.md lists them with what to do).
const (
	CodeParseError     = -32700 // the line is not JSON
	CodeInvalidRequest = -32600 // JSON, but not a JSON-RPC 2.0 request
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603

	CodeUnknownContact = 1  // not a contact: addContact first
	CodeUnknownUser    = 2  // no such user on the relay
	CodeKeyChanged     = 3  // the contact's identity key changed: fingerprint, then acceptKey
	CodeOffline        = 4  // the relay is unreachable and the call needs it
	CodeCardRejected   = 5  // the relay handed out a card or keys that do not verify
	CodeSendRefused    = 6  // the relay refused the message (data.reason says why)
	CodeNoPendingKey   = 7  // acceptKey: the key has not changed
	CodeBadMessage     = 8  // empty or too long
	CodeClosing        = 9  // the owner is shutting down
	CodeNotOverHTTP    = 10 // subscribe needs the socket (over HTTP use GET /api/v1/events)
	CodeTooMany        = 11 // too many connections, or subscriptions on one connection (closing once shutting down)
	// Requests and blocking (contactmethods.go).
	CodeBlocked     = 12 // the contact is blocked: unblock first
	CodeNotARequest = 13 // acceptRequest: the contact is no message request
	// Sending, and the owner's disk.
	CodeOnlyRejectedKey = 14 // the relay has prekeys only for the contact's key the user rejected: fingerprint, then acceptKey
	CodeStalePreKey     = 15 // the contact's signed prekey is too old: they open pfschat, then the call again
	CodeDiskFull        = 16 // the disk that holds the profile is full; nothing was written
	// Files (attachments.go).
	CodeFileTooLarge = 17 // sendFile: the file is over the relay's limit
	CodeNoFiles      = 18 // sendFile: the relay stores no files
	CodeNotAFile     = 19 // download: the id names no received file
	CodeFileGone     = 20 // download: the relay no longer has the file
	CodeFileRejected = 21 // download: the file failed verification and was deleted
	CodeFileStalled  = 22 // download: the relay stopped sending it; download again later
	CodeFileFailed   = 23 // download: it failed before (the message says why) and its file was deleted
	// Messages.
	CodeUnknownMessage = 24 // deleteMessage: the contact has no message with that id
	// Files, and the relay's limits.
	CodeFileUnreadable = 25 // sendFile: the owner cannot read the file (missing, permission denied, not a regular file)
	CodeRateLimited    = 26 // the relay refused a request over a rate limit; data.retryAfterMs says when to try again
	// The relay's other limits (data.limit names the one).
	CodeQueueFull = 27 // the recipient's queue on the relay is full: try again once they fetched what waits
	CodeFileQuota = 28 // sendFile: the sender's files on the relay would pass its quota
	CodeRelayFull = 29 // the relay's disk is nearly full: it takes no messages or files for now
	// Files.
	CodeDirUnwritable = 30 // download: the owner cannot make or write to dir
)

// codeNames are the stable names of the codes, sent as error.data.name.
var codeNames = map[int]string{
	CodeParseError: "parse_error", CodeInvalidRequest: "invalid_request", CodeMethodNotFound: "method_not_found",
	CodeInvalidParams: "invalid_params", CodeInternalError: "internal_error",
	CodeUnknownContact: "unknown_contact", CodeUnknownUser: "unknown_user", CodeKeyChanged: "key_changed",
	CodeOffline: "offline", CodeCardRejected: "card_rejected", CodeSendRefused: "send_refused",
	CodeNoPendingKey: "no_pending_key", CodeBadMessage: "bad_message", CodeClosing: "closing",
	CodeNotOverHTTP: "not_over_http", CodeTooMany: "too_many",
	CodeBlocked: "blocked", CodeNotARequest: "not_a_request",
	CodeOnlyRejectedKey: "only_rejected_key", CodeStalePreKey: "stale_prekey", CodeDiskFull: "disk_full",
	CodeFileTooLarge: "file_too_large", CodeNoFiles: "no_files", CodeNotAFile: "not_a_file",
	CodeFileGone: "file_gone", CodeFileRejected: "file_rejected", CodeFileStalled: "file_stalled",
	CodeFileFailed: "file_failed", CodeUnknownMessage: "unknown_message", CodeFileUnreadable: "file_unreadable",
	CodeRateLimited: "rate_limited", CodeQueueFull: "queue_full", CodeFileQuota: "file_quota", CodeRelayFull: "relay_full",
	CodeDirUnwritable: "dir_unwritable",
}

// Error is a JSON-RPC error object; it is also the Go error every decoder and call
// returns for a refused request.
type Error struct {
	Code    int        `json:"code"`
	Message string     `json:"message"`
	Data    *ErrorData `json:"data,omitempty"`
}

// ErrorData names the error (a stable string per code) and, when one is concerned, the
// contact; RetryAfterMs: rate_limited's wait, when the relay gave one; Limit: the
// relay's limit a refusal of the relay's names (relay/PROTOCOL.md, *Limits*).
type ErrorData struct {
	Name         string `json:"name"`
	Contact      string `json:"contact,omitempty"`
	Reason       string `json:"reason,omitempty"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (JSON-RPC error %d)", e.Message, e.Code) }

// Is matches errors with the same code, so errors.Is(err, &Error{Code: CodeKeyChanged})
// works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// NewError makes an error with its stable name filled in.
func NewError(code int, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...), Data: &ErrorData{Name: codeNames[code]}}
}

// ID is a request id: a JSON string, number or null, kept as its raw JSON so that the
// response carries exactly what the request sent.
type ID json.RawMessage

// MarshalJSON writes the id as received (null when absent).
func (id ID) MarshalJSON() ([]byte, error) {
	if len(id) == 0 {
		return []byte("null"), nil
	}
	return []byte(id), nil
}

// UnmarshalJSON keeps the id's raw JSON.
func (id *ID) UnmarshalJSON(b []byte) error {
	*id = append((*id)[:0], b...)
	return nil
}

// Request is one decoded JSON-RPC request. Notify is true for a notification (no "id"
// member): it is run, and never answered.
type Request struct {
	Method string
	Params json.RawMessage // as sent, nil for null or absent: DecodeParams refuses anything but an object
	ID     ID
	Notify bool
}

// wireRequest is a request as it is read: every member optional so that a missing one
// is reported by name.
type wireRequest struct {
	JSONRPC *string         `json:"jsonrpc"`
	Method  *string         `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

// DecodeRequest decodes one request line strictly: exactly one JSON object with
// "jsonrpc": "2.0", a non-empty "method", "params" absent or an object, "id" absent, a
// string, a number or null, and no other members or trailing data. Its member names
// are exact and appear once: JSON-RPC's names are case-sensitive, and two readers of
// one request (a proxy, a logger, the owner) must not disagree about what it says;
// DecodeParams holds params' members to the same rule. It never panics; a refusal is
// an *Error with CodeParseError (not JSON) or CodeInvalidRequest, and the id when one
// could be read, so the answer can still name the request. Batches (arrays) are
// refused: one request per line.
func DecodeRequest(line []byte) (*Request, ID, *Error) {
	line = bytes.TrimSpace(line)
	if len(line) > MaxRequestBytes {
		return nil, nil, NewError(CodeInvalidRequest, "request of %d bytes; at most %d", len(line), MaxRequestBytes)
	}
	if !json.Valid(line) {
		return nil, nil, NewError(CodeParseError, "the request is not valid JSON")
	}
	if !utf8.Valid(line) {
		// encoding/json would read each invalid byte as U+FFFD: a message's text would
		// change without a word.
		return nil, nil, NewError(CodeParseError, "the request is not valid UTF-8")
	}
	if len(line) == 0 || line[0] != '{' {
		if line[0] == '[' {
			return nil, nil, NewError(CodeInvalidRequest, "batches are not supported: send one request per line")
		}
		return nil, nil, NewError(CodeInvalidRequest, "a request is a JSON object")
	}
	if err := strictjson.CheckKeys(line, reflect.TypeFor[wireRequest]()); err != nil {
		return nil, nil, NewError(CodeInvalidRequest, "malformed request: %v", err)
	}
	var w wireRequest
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		// A member of the wrong type: the rest is decoded, the id included (its name
		// is exact and once, checked above), so the answer can name the request.
		var te *json.UnmarshalTypeError
		var id ID
		if errors.As(err, &te) && w.ID != nil && validID(w.ID) && onlyRequestMembers(line) {
			id = ID(w.ID)
		}
		return nil, id, NewError(CodeInvalidRequest, "malformed request: %s", memberError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, NewError(CodeInvalidRequest, "trailing data after the request")
	}
	var id ID
	if w.ID != nil {
		if !validID(w.ID) {
			return nil, nil, NewError(CodeInvalidRequest, "id must be a string, a number or null")
		}
		id = ID(w.ID)
	}
	if w.JSONRPC == nil || *w.JSONRPC != Version {
		return nil, id, NewError(CodeInvalidRequest, `"jsonrpc" must be "2.0"`)
	}
	if w.Method == nil || *w.Method == "" {
		return nil, id, NewError(CodeInvalidRequest, `"method" is missing`)
	}
	// params that are not an object are the method's to refuse (DecodeParams): an
	// error about params, which a notification does not answer.
	r := &Request{Method: *w.Method, ID: id, Notify: w.ID == nil}
	if w.Params != nil && !bytes.Equal(w.Params, []byte("null")) {
		r.Params = w.Params
	}
	return r, id, nil
}

// onlyRequestMembers reports whether the object line has no member a request does not:
// a request with one is answered with "id":null, whatever else is wrong with it.
func onlyRequestMembers(line []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(line, &m) != nil {
		return false
	}
	for k := range m {
		switch k {
		case "jsonrpc", "method", "params", "id":
		default:
			return false
		}
	}
	return true
}

func validID(raw json.RawMessage) bool {
	switch raw[0] {
	case '"':
		var s string
		return json.Unmarshal(raw, &s) == nil
	case 'n':
		return string(raw) == "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		// A JSON number (the request is valid JSON), kept as sent: also one a float64
		// cannot hold, which the answer echoes all the same.
		var n json.Number
		return json.Unmarshal(raw, &n) == nil
	default:
		return false
	}
}

// DecodeParams decodes a request's params into v strictly (no unknown members; in
// every object, nested ones too, member names exact and each once); absent params
// decode as {}. A refusal is CodeInvalidParams.
func DecodeParams(raw json.RawMessage, v any) *Error {
	if raw == nil || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return NewError(CodeInvalidParams, `"params" must be an object`)
	}
	if err := strictjson.CheckKeys(raw, reflect.TypeOf(v)); err != nil {
		return NewError(CodeInvalidParams, "invalid params: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return NewError(CodeInvalidParams, "invalid params: %s", memberError(err))
	}
	return nil
}

// memberError words a decoding error in the API's terms, not Go's ("cannot unmarshal
// number 10.0 into Go struct field SendParams.waitMs of type int64", "json: unknown
// field"): the member, and what it must be.
func memberError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		if lo, hi, ok := intRange(te.Type); ok && isIntegerLiteral(strings.TrimPrefix(te.Value, "number ")) {
			return fmt.Sprintf("%q must be an integer from %d to %d, not %s", te.Field, lo, hi, te.Value)
		}
		return fmt.Sprintf("%q must be %s, not %s", te.Field, jsonKind(te.Type), te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Sprintf("unknown member %s: not one this method takes", name)
	}
	return err.Error()
}

// intRange is the range of the integer type t reads into.
func intRange(t reflect.Type) (lo, hi int64, ok bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		hi := int64(math.MaxInt64 >> (64 - t.Bits()))
		return -hi - 1, hi, true
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return 0, int64(math.MaxUint32 >> (32 - t.Bits())), true
	}
	return 0, 0, false
}

// isIntegerLiteral: s is a JSON number without fraction or exponent.
func isIntegerLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// jsonKind names the JSON a Go type is read from, for an error about a member.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer (no fraction or exponent)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	default:
		return "an object"
	}
}

// Response is one JSON-RPC response: Result or Error.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	ID      ID              `json:"id"`
}

// Notification is a message from the server that answers no request: a pushed event.
type Notification struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}
