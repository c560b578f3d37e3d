package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// FuzzRenderMessage feeds message text from the network, at any width, through the
// conversation renderer: it must never panic, every line must be exactly the pane's
// width, and no control character or escape sequence from the sender may reach the
// terminal.
func FuzzRenderMessage(f *testing.F) {
	for _, s := range []string{"", "hello", "a\nb\n\nc", "\x1b[2J\x1b]0;title\x07", "\t\r\x00\x7f\u0085",
		"😀👩‍👩‍👧 漢字かな", strings.Repeat("x", 300), "https://example.com/" + strings.Repeat("a", 120), "\u202e reversed"} {
		f.Add(s, 40, false)
		f.Add(s, 7, true)
	}
	c := &common{ctx: f.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: 100, height: 30,
		now: func() time.Time { return fixedNow }, loc: time.UTC}
	f.Fuzz(func(t *testing.T, text string, width int, outgoing bool) {
		width = 1 + abs(width)%200
		r := &convRenderer{c: c, me: "alice", contact: "bob", width: width, senderW: 5}
		it := &msgItem{m: chat.Message{ID: 1, Text: text, Outgoing: outgoing, SentAt: fixedNow, State: chat.Delivered}, withDay: true}
		for i, l := range r.lines(it) {
			if w := ansi.StringWidth(l); w != width {
				t.Fatalf("line %d is %d cells, want %d: %q", i, w, width, l)
			}
			plain := ansi.Strip(l)
			for _, ch := range plain {
				if ch < 0x20 || ch == 0x7f || (ch >= 0x80 && ch < 0xa0) {
					t.Fatalf("control character %U reached the screen: %q", ch, plain)
				}
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
