package chat

import (
	"bytes"
	"path/filepath"
	"runtime"
	"testing"

	"pfschat/storage"
)

// eventQueueGoroutines counts the goroutines running an event queue, from their stacks:
// a goroutine that New left behind stays there for the life of the process.
func eventQueueGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("chat.(*eventQueue).run("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestNewRejectsBadRelayURLWithoutLeaking: New validates its preferences before it
// starts anything, so a refused controller leaves no goroutine behind.
func TestNewRejectsBadRelayURLWithoutLeaking(t *testing.T) {
	st, err := storage.CreateClientWith(t.Context(), filepath.Join(t.TempDir(), "c.db"), nil, storage.ClientOptions{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	before := eventQueueGoroutines()
	for _, url := range []string{"http://example.org", "ws://", "tcp://host:1", "::"} {
		if c, err := New(Preferences{Store: st, RelayURL: url}); err == nil {
			c.Close()
			t.Fatalf("New accepted relay URL %q", url)
		}
	}
	if after := eventQueueGoroutines(); after != before {
		t.Fatalf("New left %d event goroutines behind after refusing bad relay URLs", after-before)
	}
}
