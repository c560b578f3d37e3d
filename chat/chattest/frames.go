package chattest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// Frames records every frame a UI renders, as plain text, and lets a test wait for one
// that satisfies a condition. Give Record to the UI as its frame hook
// (ui.Options.OnFrame): it sees each View() whole, where the renderer's output stream
// carries only the changed cells. The zero value is ready to use.
type Frames struct {
	mu     sync.Mutex
	last   string
	signal chan struct{} // one pending wake-up at most
}

func (f *Frames) wake() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.signal == nil {
		f.signal = make(chan struct{}, 1)
	}
	return f.signal
}

// Record keeps frame, stripped of its styling, as the latest and wakes a waiting test.
func (f *Frames) Record(frame string) {
	wake := f.wake()
	f.mu.Lock()
	f.last = ansi.Strip(frame)
	f.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

// Last is the latest frame, as plain text.
func (f *Frames) Last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// WaitFor blocks until a frame satisfies cond and returns it, failing the test with the
// last frame after a deadline. It wakes on every new frame; no polling, no sleeps.
func (f *Frames) WaitFor(t testing.TB, what string, cond func(frame string) bool) string {
	t.Helper()
	wake := f.wake()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		if last := f.Last(); cond(last) {
			return last
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("no frame with %s; last frame:\n%s", what, f.Last())
		}
	}
}

// WaitText waits for a frame that shows every one of texts and returns it.
func (f *Frames) WaitText(t testing.TB, texts ...string) string {
	t.Helper()
	return f.WaitFor(t, strings.Join(texts, " & "), func(s string) bool {
		for _, x := range texts {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	})
}

// Next waits for the next frame, or a short while when nothing changes on screen (an
// input that changes nothing renders nothing).
func (f *Frames) Next(t testing.TB) {
	t.Helper()
	select {
	case <-f.wake():
	case <-time.After(200 * time.Millisecond):
	}
}
