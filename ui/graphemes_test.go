package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// TestDeliveryMarkVisibleWithAnyGrapheme: an outgoing message made of any grapheme
// clusters — emoji ZWJ sequences, skin tones, flags, keycaps, variation selectors, CJK,
// combining marks, right-to-left text — renders every line exactly the pane's width (as
// the Charm stack measures a grapheme cluster, ansi.StringWidth) and keeps its delivery
// mark at the end of its last line, at every width.
func TestDeliveryMarkVisibleWithAnyGrapheme(t *testing.T) {
	c := &common{ctx: t.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: 100, height: 30,
		now: func() time.Time { return fixedNow }, loc: time.UTC}
	clusters := []string{
		"👨\u200d👩\u200d👧\u200d👦", "👍🏽", "🏳️\u200d🌈", "🇩🇪", "1️⃣", "❤️", "漢字", "かな", "한국어",
		"e\u0301", "שלום", "مرحبا", "\u202eoverride", "👩🏿\u200d💻", "🧑\u200d🤝\u200d🧑",
	}
	var texts []string
	for _, g := range clusters {
		texts = append(texts, g, strings.Repeat(g, 40), "ok "+g, strings.Repeat("ab "+g+" ", 12))
	}
	texts = append(texts, strings.Join(clusters, ""), strings.Join(clusters, " "))
	for _, text := range texts {
		for width := 20; width <= 61; width++ {
			r := &convRenderer{c: c, me: "alice", contact: "bob", width: width, senderW: 5}
			it := &msgItem{m: chat.Message{ID: 1, Text: text, Outgoing: true, SentAt: fixedNow, State: chat.Delivered}}
			lines := r.lines(it)
			for i, l := range lines {
				if w := ansi.StringWidth(l); w != width {
					t.Fatalf("%q at width %d: line %d is %d cells: %q", text, width, i, w, ansi.Strip(l))
				}
			}
			if last := ansi.Strip(lines[len(lines)-1]); !strings.HasSuffix(last, " ✓✓") {
				t.Fatalf("%q at width %d: the delivery mark is not at the end of the last line: %q", text, width, last)
			}
		}
	}
}
