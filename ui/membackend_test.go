package ui

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"pfschat/chat"
	"pfschat/ratchet"
)

// memBackend is a deterministic in-memory Backend. The behaviour tests use real chat
// controllers over a real relay; this one exists only where real keys would make the
// output random (golden files) or building 100,000 real messages would dominate the
// measurement (scrollback benchmarks).
type memBackend struct {
	mu       sync.Mutex
	me       string
	contacts map[string]*chat.Contact
	msgs     map[string][]chat.Message // oldest first
	nextID   int64
	events   chan chat.Event
	now      func() time.Time
	safety   map[string]string
	pending  map[string]string
	verified map[string]bool
	rejected []string
	reads    int // History calls
}

func newMemBackend(me string, now func() time.Time) *memBackend {
	return &memBackend{me: me, contacts: map[string]*chat.Contact{}, msgs: map[string][]chat.Message{},
		events: make(chan chat.Event, 64), now: now, safety: map[string]string{}, pending: map[string]string{},
		verified: map[string]bool{}}
}

func (b *memBackend) addContact(c chat.Contact) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cc := c
	b.contacts[c.Name] = &cc
}

func (b *memBackend) addMessage(m chat.Message) chat.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextID++
	m.ID = b.nextID
	b.msgs[m.Contact] = append(b.msgs[m.Contact], m)
	if c := b.contacts[m.Contact]; c != nil && msgTime(m).After(c.LastActivity) {
		c.LastActivity = msgTime(m)
	}
	return m
}

func (b *memBackend) Me() string { return b.me }

func (b *memBackend) Contacts(ctx context.Context) ([]chat.Contact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []chat.Contact
	for _, c := range b.contacts {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (b *memBackend) AddContact(ctx context.Context, name string) (chat.Contact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if name == "nobody" {
		return chat.Contact{}, fmt.Errorf("add %s: %w", name, chat.ErrUnknownUser)
	}
	if err := ratchet.ValidateName(name); err != nil { // as chat.Controller says it
		return chat.Contact{}, fmt.Errorf("chat: %q is not a valid name: %w", name, err)
	}
	c := &chat.Contact{Name: name, CardID: strings.Repeat("c", 64), Fingerprint: "ab12 cd34"}
	b.contacts[name] = c
	return *c, nil
}

func (b *memBackend) Send(ctx context.Context, contact, text string) (chat.Message, error) {
	m := b.addMessage(chat.Message{Contact: contact, Outgoing: true, Text: text, SentAt: b.now(), State: chat.Pending})
	return m, nil
}

func (b *memBackend) History(ctx context.Context, contact string, before int64, n int) ([]chat.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads++
	all := b.msgs[contact]
	end := len(all)
	if before != 0 {
		end = sort.Search(len(all), func(i int) bool { return all[i].ID >= before })
	}
	start := max(0, end-n)
	out := make([]chat.Message, 0, end-start)
	for i := end - 1; i >= start; i-- {
		out = append(out, all[i])
	}
	return out, nil
}

func (b *memBackend) MarkRead(ctx context.Context, contact string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.contacts[contact]; c != nil {
		c.Unread = 0
	}
	return nil
}

// MarkReadThrough leaves unread the incoming messages after id (this backend counts
// unread messages, it does not mark each).
func (b *memBackend) MarkReadThrough(ctx context.Context, contact string, id int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.contacts[contact]
	if c == nil {
		return nil
	}
	after := 0
	for _, m := range b.msgs[contact] {
		if !m.Outgoing && m.ID > id {
			after++
		}
	}
	c.Unread = min(c.Unread, after)
	return nil
}

func (b *memBackend) SafetyNumber(ctx context.Context, contact string) (chat.SafetyNumber, error) {
	return chat.SafetyNumber{}, nil
}

func (b *memBackend) Verify(ctx context.Context, contact string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.contacts[contact]; c != nil {
		c.Verified = true
	}
	return nil
}

func (b *memBackend) AcceptKey(ctx context.Context, contact string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.contacts[contact]; c != nil {
		c.KeyChanged = false
	}
	return nil
}

func (b *memBackend) RejectKey(ctx context.Context, contact string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.contacts[contact]; c != nil {
		c.KeyChanged = false
	}
	b.rejected = append(b.rejected, contact)
	return nil
}

func (b *memBackend) RotateKeys(ctx context.Context, n int) error            { return nil }
func (b *memBackend) SetReadReceipts(ctx context.Context, on bool) error     { return nil }
func (b *memBackend) ResetSession(ctx context.Context, contact string) error { return nil }
func (b *memBackend) Events() <-chan chat.Event                              { return b.events }
func (b *memBackend) Close() error                                           { return nil }
