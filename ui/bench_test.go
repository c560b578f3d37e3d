package ui

import (
	"context"
	"fmt"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

const benchMessages = 100_000

// benchScreen is a main screen at 100×30 whose conversation with bob holds n messages,
// all loaded (as if the person had scrolled through the whole history).
func benchScreen(b *testing.B, n int) (*App, *mainScreen, *memBackend) {
	b.Helper()
	be := newMemBackend("alice", func() time.Time { return fixedNow })
	be.addContact(chat.Contact{Name: "bob", Fingerprint: "3f2a 9c1d"})
	start := fixedNow.Add(-time.Duration(n) * time.Minute)
	for i := range n {
		text := fmt.Sprintf("message %d: the quick brown fox jumps over the lazy dog", i)
		if i%7 == 0 {
			text += " and keeps running across the field until the line has to wrap at least once"
		}
		be.addMessage(chat.Message{Contact: "bob", Outgoing: i%2 == 0, Text: text,
			SentAt: start.Add(time.Duration(i) * time.Minute), State: chat.Delivered})
	}
	app := New(b.Context(), Options{Backend: be, Now: func() time.Time { return fixedNow }, Location: time.UTC})
	app.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	ms := app.screen.(*mainScreen)
	list, _ := be.Contacts(b.Context())
	ms.onContacts(contactsMsg{list: list})
	return app, ms, be
}

// loadAll pulls the whole history through the same paging the UI uses on scroll.
func loadAll(ctx context.Context, ms *mainScreen, be *memBackend) {
	cv := ms.conv()
	for !cv.exhausted {
		msgs, _ := be.History(ctx, "bob", cv.oldestID(), historyPage)
		cv.loading = true
		ms.onHistory(historyMsg{contact: "bob", before: cv.oldestID(), msgs: msgs})
	}
}

// BenchmarkOpenConversation100k: open a 100,000-message conversation (first page from
// the backend, first frame).
func BenchmarkOpenConversation100k(b *testing.B) {
	_, _, be := benchScreen(b, benchMessages)
	b.ReportAllocs()
	for b.Loop() {
		app := New(b.Context(), Options{Backend: be, Now: func() time.Time { return fixedNow }, Location: time.UTC})
		app.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
		ms := app.screen.(*mainScreen)
		list, _ := be.Contacts(b.Context())
		ms.onContacts(contactsMsg{list: list})
		msgs, _ := be.History(b.Context(), "bob", 0, historyPage)
		ms.onHistory(historyMsg{contact: "bob", msgs: msgs})
		_ = app.View()
	}
}

// BenchmarkView100k: one frame of the main screen with 100,000 messages loaded.
func BenchmarkView100k(b *testing.B) {
	app, ms, be := benchScreen(b, benchMessages)
	loadAll(b.Context(), ms, be)
	ms.conv().scrollUp(ms.renderer(), benchMessages/2, ms.convBodyHeight()) // middle of the history
	_ = app.View()
	b.ReportAllocs()
	for b.Loop() {
		_ = app.View()
	}
}

// BenchmarkView50 is the same frame over a 50-message history: the baseline that shows
// a frame's cost does not grow with the history.
func BenchmarkView50(b *testing.B) {
	app, ms, be := benchScreen(b, 50)
	loadAll(b.Context(), ms, be)
	_ = app.View()
	b.ReportAllocs()
	for b.Loop() {
		_ = app.View()
	}
}

// BenchmarkScrollPage100k: PgUp (Update) plus the next frame (View), walking up
// through 100,000 loaded messages; back to the bottom when the top is reached.
func BenchmarkScrollPage100k(b *testing.B) {
	app, ms, be := benchScreen(b, benchMessages)
	loadAll(b.Context(), ms, be)
	pgup := keyMsg("pgup")
	b.ReportAllocs()
	for b.Loop() {
		app.Update(pgup)
		_ = app.View()
		if cv := ms.conv(); cv.anchor < 50 {
			cv.toBottom()
		}
	}
}

// BenchmarkScrollWheelWithPaging: mouse wheel up from the bottom of a 100,000-message
// history, loading pages of 50 from the backend as the top approaches (the real path).
func BenchmarkScrollWheelWithPaging(b *testing.B) {
	app, ms, be := benchScreen(b, benchMessages)
	msgs, _ := be.History(b.Context(), "bob", 0, historyPage)
	ms.onHistory(historyMsg{contact: "bob", msgs: msgs})
	wheel := tea.MouseWheelMsg{Button: tea.MouseWheelUp}
	b.ReportAllocs()
	for b.Loop() {
		_, cmd := app.Update(wheel)
		if cmd != nil {
			if hm, ok := cmd().(historyMsg); ok {
				app.Update(hm)
			}
		}
		_ = app.View()
		if cv := ms.conv(); cv.exhausted && cv.anchor < 50 {
			cv.toBottom()
		}
	}
}

// BenchmarkResize100k: a width change re-renders only the visible messages.
func BenchmarkResize100k(b *testing.B) {
	app, ms, be := benchScreen(b, benchMessages)
	loadAll(b.Context(), ms, be)
	widths := []int{100, 120, 80, 40}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		app.Update(tea.WindowSizeMsg{Width: widths[i%len(widths)], Height: 30})
		_ = app.View()
		i++
	}
}
