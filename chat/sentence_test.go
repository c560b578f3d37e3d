package chat_test

import (
	"errors"
	"fmt"
	"testing"

	"pfschat/chat"
)

// TestSentence: errors read as sentences — no package prefixes, no repeated parts, an
// address once, the first line only.
func TestSentence(t *testing.T) {
	base := errors.New("storage: disk full")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("chat: sending to bob: %w", fmt.Errorf("chat: sending to bob: %w", base)), "sending to bob: disk full"},
		{fmt.Errorf("chat: accepting bob's new key: %w", errors.New("ratchet: bad signature\nmore detail")), "accepting bob's new key: bad signature"},
		{chat.ErrNoPendingKey, "contact has no new key to accept or reject"},
		{fmt.Errorf("chat: nickname for bob: %w", fmt.Errorf("%w: a nickname is at most 64 bytes of UTF-8", errors.New("storage: invalid argument"))),
			"nickname for bob: a nickname is at most 64 bytes of UTF-8"},
		{errors.New("storage: invalid argument"), "invalid argument"},
		{fmt.Errorf("chat: nickname for bob: %w", errors.New("storage: invalid argument")), "nickname for bob: invalid argument"},
		// An address once: the relay client names the URL it dials, and so does the
		// controller around it.
		{errors.New("chat: offline: ws://127.0.0.1:7878/v2/ws: relay: dialing ws://127.0.0.1:7878/v2/ws: dial tcp 127.0.0.1:7878: connect: connection refused"),
			"offline: ws://127.0.0.1:7878/v2/ws: dial tcp 127.0.0.1:7878: connect: connection refused"},
		{errors.New("cannot reach wss://a.example/v2/ws: nor wss://b.example/v2/ws: timeout"), "cannot reach wss://a.example/v2/ws: nor wss://b.example/v2/ws: timeout"},
	} {
		if got := chat.Sentence(tc.err); got != tc.want {
			t.Errorf("Sentence(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
