package ui

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// readCounter is a memBackend that reads a conversation from its first unread message
// (UnreadHistorian, as *chat.Controller does) and counts the reads of history.
type readCounter struct {
	*memBackend
	mu             sync.Mutex
	pages, windows int
}

func (b *readCounter) History(ctx context.Context, contact string, before int64, n int) ([]chat.Message, error) {
	b.mu.Lock()
	b.pages++
	b.mu.Unlock()
	return b.memBackend.History(ctx, contact, before, n)
}

func (b *readCounter) HistoryFromUnread(ctx context.Context, contact string, unread, older int) ([]chat.Message, bool, error) {
	b.mu.Lock()
	b.windows++
	b.mu.Unlock()
	b.memBackend.mu.Lock()
	all := b.msgs[contact]
	from := len(all)
	for seen := 0; from > 0 && seen < unread; {
		from--
		if !all[from].Outgoing {
			seen++
		}
	}
	start := max(0, from-older)
	var out []chat.Message
	for i := len(all) - 1; i >= start; i-- {
		out = append(out, all[i])
	}
	b.memBackend.mu.Unlock()
	return out, start > 0, nil
}

// TestOpenThousandsUnread: a conversation with 3,000 unread messages was opened by
// reading 50-message pages one after another back to the first unread (60 reads before
// anything was shown). It opens at the first unread with one read of its history.
func TestOpenThousandsUnread(t *testing.T) {
	mb := newMemBackend("alice", func() time.Time { return fixedNow })
	b := &readCounter{memBackend: mb}
	mb.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)})
	mb.addContact(chat.Contact{Name: "dave", CardID: strings.Repeat("d", 64)})
	mb.addMessage(chat.Message{Contact: "bob", Text: "hello", SentAt: fixedNow.Add(-2 * time.Hour)})
	for i := 1; i <= 80; i++ {
		mb.addMessage(chat.Message{Contact: "dave", Text: fmt.Sprintf("read %d", i), SentAt: fixedNow.Add(-2 * time.Hour)})
	}
	const unread = 3000
	for i := 1; i <= unread; i++ {
		mb.addMessage(chat.Message{Contact: "dave", Text: fmt.Sprintf("unread %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	mb.contacts["dave"].Unread = unread
	a := New(t.Context(), Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }, Location: time.UTC})
	a.Update(tea.WindowSizeMsg{Width: 80, Height: 30})
	m := a.screen.(*mainScreen)
	drive(t, m, m.c.loadContacts(b), "")
	b.mu.Lock()
	b.pages, b.windows = 0, 0
	b.mu.Unlock()

	_, cmd := a.Update(keyMsg("ctrl+up"))
	drive(t, m, cmd, "")
	if m.open != "dave" {
		t.Fatalf("ctrl+up opened %q, want dave", m.open)
	}
	view := ansi.Strip(m.View())
	if !strings.Contains(view, "── 3000 new") || !strings.Contains(view, "unread 1 ") {
		t.Fatalf("dave opened without the \"3000 new\" divider and the first unread message in view:\n%s", view)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pages+b.windows > 2 {
		t.Fatalf("opening read the history %d times (%d pages, %d from the first unread), want at most 2", b.pages+b.windows, b.pages, b.windows)
	}
	if cv := m.conv(); cv.exhausted {
		t.Fatal("30 older messages were not read, and the conversation says it has none")
	}
}
