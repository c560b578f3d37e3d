package ui

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

func (b *memBackend) DeleteMessage(ctx context.Context, contact string, id int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	// An unread message deleted is no longer counted (the unread ones are the newest
	// incoming messages, Unread of them).
	if c := b.contacts[contact]; c != nil && c.Unread > 0 {
		newer := 0
		for _, m := range b.msgs[contact] {
			if !m.Outgoing && m.ID >= id {
				newer++
			}
		}
		if i := slices.IndexFunc(b.msgs[contact], func(m chat.Message) bool { return m.ID == id }); i >= 0 &&
			!b.msgs[contact][i].Outgoing && newer <= c.Unread {
			c.Unread--
		}
	}
	b.msgs[contact] = slices.DeleteFunc(b.msgs[contact], func(m chat.Message) bool { return m.ID == id })
	b.emit(chat.Event{Kind: chat.MessagesDeleted, Contact: contact, Message: &chat.Message{ID: id, Contact: contact}})
	return nil
}

func (b *memBackend) ClearConversation(ctx context.Context, contact string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.msgs[contact])
	b.msgs[contact] = nil
	if n > 0 {
		b.emit(chat.Event{Kind: chat.MessagesDeleted, Contact: contact})
	}
	return n, nil
}

// emit queues ev as the controller does (dropped when nobody reads and the queue is
// full: a test that wants them drives them, driveEvents).
func (b *memBackend) emit(ev chat.Event) {
	select {
	case b.events <- ev:
	default:
	}
}

// driveEvents hands the events queued by b to m, as the running UI does.
func driveEvents(t *testing.T, m *mainScreen, b *memBackend) {
	t.Helper()
	for {
		select {
		case ev := <-b.events:
			drive(t, m, m.handleEvent(ev), "")
		default:
			return
		}
	}
}

// drive runs cmd and feeds every message it produces back into the main screen (and
// into a dialog it opens, answering it with key), until nothing is left.
func drive(t *testing.T, m *mainScreen, cmd tea.Cmd, key string) {
	t.Helper()
	queue := []tea.Cmd{cmd}
	for steps := 0; len(queue) > 0 && steps < 100; steps++ {
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		switch msg := c().(type) {
		case nil:
		case tea.BatchMsg:
			queue = append(queue, msg...)
		case pushDialogMsg:
			_, dc := msg.d.Update(keyMsg(key))
			queue = append(queue, dc)
		case noticeExpiredMsg:
		default:
			_, next := m.Update(msg)
			queue = append(queue, next)
		}
	}
}

// TestDeleteAndClearCommands: /delete removes the newest message (after the
// confirmation), /delete 2 the one before, /clear them all; "n" or Enter keeps
// everything.
func TestDeleteAndClearCommands(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond // drive runs the expiry's tick too
	b := m.b.(*memBackend)
	for _, text := range []string{"one", "two", "three", "four"} {
		b.addMessage(chat.Message{Contact: "bob", Text: text, SentAt: fixedNow})
	}
	drive(t, m, m.openContact("bob"), "")
	texts := func() []string {
		var out []string
		for _, it := range m.conv().items {
			out = append(out, it.m.Text)
		}
		return out
	}
	if got := texts(); !slices.Equal(got, []string{"one", "two", "three", "four"}) {
		t.Fatalf("loaded %v", got)
	}
	drive(t, m, m.command([]string{"/delete"}), "n")
	if got := texts(); len(got) != 4 {
		t.Fatalf("answered no, still deleted: %v", got)
	}
	// An Enter typed ahead (the end of the next command) is no answer: only "y" is.
	drive(t, m, m.command([]string{"/delete"}), "enter")
	if got := texts(); len(got) != 4 {
		t.Fatalf("Enter at the confirmation deleted: %v", got)
	}
	drive(t, m, m.command([]string{"/delete"}), "y")
	driveEvents(t, m, b)
	drive(t, m, m.command([]string{"/delete", "2"}), "y")
	driveEvents(t, m, b)
	if got := texts(); !slices.Equal(got, []string{"one", "three"}) {
		t.Fatalf("after /delete and /delete 2: %v, want [one three]", got)
	}
	if !strings.Contains(m.notice, "deleted") {
		t.Errorf("notice %q", m.notice)
	}
	drive(t, m, m.command([]string{"/delete", "9"}), "y")
	if !m.noticeErr || !strings.Contains(m.notice, "this conversation has 2 messages") {
		t.Errorf("/delete 9 of 2 messages: notice %q", m.notice)
	}
	drive(t, m, m.command([]string{"/clear"}), "y")
	driveEvents(t, m, b)
	if got := texts(); len(got) != 0 {
		t.Fatalf("after /clear: %v", got)
	}
}

// TestDeleteReloadsOnce: /delete takes the message out of the view without reading the
// conversation again (onDeleted), and /clear reads it again once, whether the
// controller's MessagesDeleted event reaches the screen before the command's own
// answer or after it; both reloaded it, so /clear read it twice, and /delete too when
// the event came first.
func TestDeleteReloadsOnce(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond
	b := m.b.(*memBackend)
	for _, text := range []string{"one", "two", "three", "four"} {
		b.addMessage(chat.Message{Contact: "bob", Text: text, SentAt: fixedNow})
	}
	drive(t, m, m.openContact("bob"), "")
	reads := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		n := b.reads
		b.reads = 0
		return n
	}
	newest := func() int64 { return m.conv().items[len(m.conv().items)-1].m.ID }
	reads()

	// The answer first, then the event.
	drive(t, m, m.command([]string{"/delete"}), "y")
	driveEvents(t, m, b)
	if n := reads(); n != 0 {
		t.Errorf("/delete, answer then event: the conversation was read %d times, want 0", n)
	}
	// The event first, then the answer.
	id := newest()
	_ = b.DeleteMessage(t.Context(), "bob", id)
	driveEvents(t, m, b)
	drive(t, m, func() tea.Msg { return opDoneMsg{"delete", "bob", nil} }, "")
	if n := reads(); n != 0 {
		t.Errorf("/delete, event then answer: the conversation was read %d times, want 0", n)
	}
	drive(t, m, m.command([]string{"/clear"}), "y")
	driveEvents(t, m, b)
	if n := reads(); n != 1 {
		t.Errorf("/clear: the conversation was read %d times, want 1", n)
	}
	if len(m.conv().items) != 0 || !strings.Contains(m.notice, "cleared") {
		t.Fatalf("after /clear: %d messages shown, notice %q", len(m.conv().items), m.notice)
	}
}

func (b *memBackend) AcceptRequest(ctx context.Context, name string) error {
	return b.setContact(name, func(c *chat.Contact) { c.Request = false })
}
func (b *memBackend) Block(ctx context.Context, name string) error {
	return b.setContact(name, func(c *chat.Contact) { c.Blocked, c.Request = true, false })
}
func (b *memBackend) Unblock(ctx context.Context, name string) error {
	return b.setContact(name, func(c *chat.Contact) { c.Blocked = false })
}
func (b *memBackend) RemoveContact(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.contacts, name)
	delete(b.msgs, name)
	return nil
}
func (b *memBackend) SetNickname(ctx context.Context, name, nick string) error {
	return b.setContact(name, func(c *chat.Contact) { c.Nickname = nick })
}
func (b *memBackend) SetMuted(ctx context.Context, name string, muted bool) error {
	return b.setContact(name, func(c *chat.Contact) { c.Muted = muted })
}
func (b *memBackend) setContact(name string, f func(*chat.Contact)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.contacts[name]
	if !ok {
		return chat.ErrUnknownContact
	}
	f(c)
	return nil
}

// TestNickRenamesShownMessages: after /nick the conversation's lines already on screen
// name the contact by the nickname, aligned to its width, as the list and the header
// do (they kept the old name until a resize re-rendered them).
func TestNickRenamesShownMessages(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64), Fingerprint: "3f2a 9c1d"})
	b.addMessage(chat.Message{Contact: "bob", Text: "hello from bob", SentAt: fixedNow.Add(-time.Minute)})
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Now: func() time.Time { return fixedNow }}, 100, 30)
	fr.WaitText(t, "hello from bob")
	tm.Type("/nick bobby")
	press(tm, "enter")
	fr.WaitText(t, "nickname of bob saved")
	frame := fr.WaitFor(t, "the message line naming bobby", func(s string) bool { return strings.Contains(s, "09:29 bobby hello from bob") })
	if strings.Contains(frame, "09:29 bob   hello") {
		t.Fatalf("a message line still names bob:\n%s", frame)
	}
}

// TestMuteSaysWhichWay: /mute's notice says whether the contact is muted now or not
// ("notifications for bob toggled" left the user to guess).
func TestMuteSaysWhichWay(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond // drive runs the expiry's tick too
	drive(t, m, m.openContact("bob"), "")
	drive(t, m, m.command([]string{"/mute"}), "")
	if !strings.Contains(m.notice, "bob muted") {
		t.Fatalf("first /mute: notice %q, want it to say bob is muted", m.notice)
	}
	if ct, _ := m.contact("bob"); !ct.Muted {
		t.Fatal("first /mute: bob is not muted")
	}
	drive(t, m, m.command([]string{"/mute"}), "")
	if !strings.Contains(m.notice, "bob unmuted") {
		t.Fatalf("second /mute: notice %q, want it to say bob is unmuted", m.notice)
	}
	if ct, _ := m.contact("bob"); ct.Muted {
		t.Fatal("second /mute: bob is still muted")
	}
}

// TestNickWithoutNameSaysRemoved: /nick without a nickname removes it and says so
// (it said "nickname of bob saved").
func TestNickWithoutNameSaysRemoved(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond // drive runs the expiry's tick too
	drive(t, m, m.openContact("bob"), "")
	drive(t, m, m.command([]string{"/nick", "bobby"}), "")
	if ct, _ := m.contact("bob"); ct.Nickname != "bobby" || !strings.Contains(m.notice, "nickname of bob saved") {
		t.Fatalf("/nick bobby: nickname %q, notice %q", ct.Nickname, m.notice)
	}
	drive(t, m, m.command([]string{"/nick"}), "")
	if ct, _ := m.contact("bob"); ct.Nickname != "" || !strings.Contains(m.notice, "nickname of bob removed") {
		t.Fatalf("/nick: nickname %q, notice %q, want it removed and said so", ct.Nickname, m.notice)
	}
	// Again, with none to remove: it says so (it said "removed" again).
	drive(t, m, m.command([]string{"/nick"}), "")
	if !strings.Contains(m.notice, "bob has no nickname; nothing to remove") {
		t.Fatalf("/nick without a nickname to remove: notice %q", m.notice)
	}
}

// TestFileCommandNamesWhatIsWrong: /file of a path that does not exist, or of a folder,
// says which (both said "not a file").
func TestFileCommandNamesWhatIsWrong(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond
	drive(t, m, m.openContact("bob"), "")
	dir := t.TempDir()
	for arg, want := range map[string]string{
		filepath.Join(dir, "nope.txt"): "no such file: " + filepath.Join(dir, "nope.txt"),
		dir:                            dir + " is a folder",
	} {
		drive(t, m, m.command([]string{"/file", arg}), "")
		if !strings.Contains(m.notice, want) {
			t.Errorf("/file %s: notice %q, want %q", arg, m.notice, want)
		}
	}
}

// TestUnblockSaysWhenNotBlocked: /unblock of a contact who is not blocked says so and
// changes nothing (it said "unblocked bob").
func TestUnblockSaysWhenNotBlocked(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond // drive runs the expiry's tick too
	drive(t, m, m.openContact("bob"), "")
	drive(t, m, m.command([]string{"/unblock"}), "")
	if !strings.Contains(m.notice, "bob is not blocked") {
		t.Fatalf("/unblock of a contact not blocked: notice %q", m.notice)
	}
}

// A draft belongs to its conversation, as in Signal: opening another keeps it there and
// brings back that one's (with one input for all, a text begun for bob went to carol).
// Text typed before any conversation is open stays in the input.
func TestDraftsStayWithTheirConversation(t *testing.T) {
	m := newTestMainScreen(t)
	carol := chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)}
	m.contacts = append(m.contacts, carol)
	m.input.SetValue("/add dave")
	drive(t, m, m.openContact("bob"), "")
	if got := m.input.Value(); got != "/add dave" {
		t.Fatalf("opening the first conversation: input %q, want what was typed before", got)
	}
	m.input.SetValue("draft for bob")
	drive(t, m, m.openContact("carol"), "")
	if got := m.input.Value(); got != "" {
		t.Fatalf("carol's input holds %q, bob's draft", got)
	}
	m.input.SetValue("hi carol")
	drive(t, m, m.openContact("bob"), "")
	if got := m.input.Value(); got != "draft for bob" {
		t.Fatalf("back at bob: input %q", got)
	}
	drive(t, m, m.openContact("carol"), "")
	if got := m.input.Value(); got != "hi carol" {
		t.Fatalf("back at carol: input %q", got)
	}
}

// Below the smallest size the screen says so in full, wrapped to the width it has (at
// 20×5 it read "pfschat needs at lea").
func TestTooSmallSaysSoInFull(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.width, m.c.height = 20, 5
	if v := ansi.Strip(m.View()); !strings.Contains(v, "pfschat needs at") || !strings.Contains(v, "least 20×8") {
		t.Fatalf("too small a terminal shows %q", v)
	}
}

// Names are lower case, and the add dialog takes "Dave" as dave, typed or given to
// /add, as onboarding and the CLI do (it refused capitals with the rule twice over).
func TestAddDialogLowerCasesTheName(t *testing.T) {
	m := newTestMainScreen(t)
	b := m.b.(*memBackend)
	d := newAddContactDialog(m.c, b, "")
	for _, k := range []string{"D", "a", "v", "E"} {
		d.Update(keyMsg(k))
	}
	if got := d.input.Value(); got != "dave" {
		t.Fatalf("typed DavE, the field holds %q", got)
	}
	_, cmd := d.Update(keyMsg("enter"))
	if cmd == nil || d.pending != "dave" {
		t.Fatalf("enter: pending %q, want dave looked up", d.pending)
	}
	if msg, ok := cmd().(addedMsg); !ok || msg.err != nil || msg.contact.Name != "dave" {
		t.Fatalf("lookup: %+v", msg)
	}
	if d2 := newAddContactDialog(m.c, b, "Erin"); d2.pending != "erin" || d2.input.Value() != "erin" {
		t.Fatalf("/add Erin: pending %q, field %q, want erin", d2.pending, d2.input.Value())
	}
}

// The empty pane's text wraps on a narrow pane instead of being cut ("then compare
// safety numbers with /" at 60 columns).
func TestEmptyPaneWraps(t *testing.T) {
	m := newTestMainScreen(t)
	m.open = ""
	for _, w := range []int{30, 40, 80} {
		lines := m.conversationView(w, 12)
		text := strings.Join(strings.Fields(ansi.Strip(strings.Join(lines, " "))), " ")
		if !strings.Contains(text, "/add NAME, then compare safety numbers with /verify.") {
			t.Errorf("at %d columns the empty pane reads %q", w, text)
		}
		for _, l := range lines {
			if ansi.StringWidth(l) != w {
				t.Fatalf("at %d columns a line is %d wide: %q", w, ansi.StringWidth(l), l)
			}
		}
	}
}
