package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"pfschat/chat"
)

// TestDetectNotifier: the sequence is chosen from the environment; PFSCHAT_NOTIFY wins.
func TestDetectNotifier(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want NotifyProtocol
		tmux bool
	}{
		{map[string]string{"KITTY_WINDOW_ID": "1", "TERM": "xterm-kitty"}, NotifyOSC99, false},
		{map[string]string{"TERM_PROGRAM": "iTerm.app"}, NotifyOSC9, false},
		{map[string]string{"TERM_PROGRAM": "WezTerm"}, NotifyOSC9, false},
		{map[string]string{"TERM": "xterm-ghostty"}, NotifyOSC9, false},
		{map[string]string{"WT_SESSION": "x"}, NotifyOSC9, false},
		{map[string]string{"VTE_VERSION": "7600", "TERM": "xterm-256color"}, NotifyOSC777, false},
		{map[string]string{"TERM": "foot"}, NotifyOSC777, false},
		{map[string]string{"TERM": "rxvt-unicode-256color"}, NotifyOSC777, false},
		{map[string]string{"TERM": "xterm-256color"}, NotifyNone, false},
		{map[string]string{"TERM": "xterm-256color", "PFSCHAT_NOTIFY": "osc777", "TMUX": "/tmp/t,1,0"}, NotifyOSC777, true},
		{map[string]string{"KITTY_WINDOW_ID": "1", "PFSCHAT_NOTIFY": "none"}, NotifyNone, false},
	} {
		got := DetectNotifier(func(k string) string { return tc.env[k] })
		if got.Protocol != tc.want || got.Tmux != tc.tmux {
			t.Errorf("%v: %v (tmux %v), want %v (tmux %v)", tc.env, got.Protocol, got.Tmux, tc.want, tc.tmux)
		}
	}
}

// TestNotifySequenceBytes pins the bytes of each sequence; nothing from the title or
// body can end the sequence early or start another (control characters, OSC 777's ';').
func TestNotifySequenceBytes(t *testing.T) {
	title, body := "pfschat: message from bob", "hi;\x1b]0;pwned\x07 there\nyou\u009c"
	for _, tc := range []struct {
		n    Notifier
		want string
	}{
		{Notifier{Protocol: NotifyOSC9}, "\x1b]9;pfschat: message from bob: hi; ]0;pwned there you\a"},
		{Notifier{Protocol: NotifyOSC777}, "\x1b]777;notify;pfschat: message from bob;hi ]0 pwned there you\a"},
		{Notifier{Protocol: NotifyOSC99}, "\x1b]99;i=7:d=0:p=title;pfschat: message from bob\x1b\\\x1b]99;i=7:d=1:p=body;hi; ]0;pwned there you\x1b\\"},
		{Notifier{Protocol: NotifyOSC9, Tmux: true}, "\x1bPtmux;\x1b\x1b]9;pfschat: message from bob: hi; ]0;pwned there you\a\x1b\\"},
		{Notifier{Protocol: NotifyNone}, ""},
	} {
		if got := tc.n.Sequence(7, title, body); got != tc.want {
			t.Errorf("%v: %q\nwant %q", tc.n, got, tc.want)
		}
	}
	if got := (Notifier{Protocol: NotifyOSC9}).Sequence(1, "pfschat: message from bob", ""); got != "\x1b]9;pfschat: message from bob\a" {
		t.Errorf("no body: %q", got)
	}
	long := (Notifier{Protocol: NotifyOSC9}).Sequence(1, "t", strings.Repeat("é", 500))
	if n := len([]rune(long)); n > maxNotifyText+20 {
		t.Errorf("a long body is not cut: %d runes", n)
	}
}

// rawOut runs cmd and returns what it writes to the terminal (tea.Raw), "" for none.
func rawOut(cmd tea.Cmd) string {
	if cmd == nil {
		return ""
	}
	switch msg := cmd().(type) {
	case tea.RawMsg:
		s, _ := msg.Msg.(string)
		return s
	case tea.BatchMsg:
		var out string
		for _, c := range msg {
			out += rawOut(c)
		}
		return out
	}
	return ""
}

// TestNotificationBytes: what the UI writes for an incoming message, by setting: the
// sender only by default, the text with preview on, nothing for the conversation on
// screen unless the terminal lost the focus, nothing for a muted contact or with
// notifications off, the bell alone without a notification sequence, no bell with
// /bell off.
func TestNotificationBytes(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.notifier = Notifier{Protocol: NotifyOSC777}
	m.c.notify = chat.NotifySettings{On: true} // the default of New
	m.c.focused = true
	clock := fixedNow
	m.c.now = func() time.Time { clock = clock.Add(notifyCoalesce); return clock } // no coalescing here
	m.c.bell = true
	b := m.b.(*memBackend)
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64), Request: true})
	b.addContact(chat.Contact{Name: "dave", CardID: strings.Repeat("d", 64), Muted: true, Nickname: "Dad"})
	m.contacts, _ = b.Contacts(t.Context())
	m.open = "bob"
	ev := func(from, text string) chat.Event {
		return chat.Event{Kind: chat.MessageReceived, Contact: from, Message: &chat.Message{Contact: from, Text: text}}
	}
	check := func(what string, e chat.Event, want string) {
		t.Helper()
		if got := rawOut(m.notification(e)); got != want {
			t.Errorf("%s: wrote %q, want %q", what, got, want)
		}
	}
	check("open conversation, focused", ev("bob", "secret"), "")
	check("request, other conversation", ev("carol", "secret"), "\x1b]777;notify;pfschat: message request from carol;\a\a")
	check("muted", ev("dave", "secret"), "")
	m.c.focused = false
	check("open conversation, unfocused", ev("bob", "secret"), "\x1b]777;notify;pfschat: message from bob;\a\a")
	m.c.notify.Preview = true
	check("preview on", ev("bob", "the text"), "\x1b]777;notify;pfschat: message from bob;the text\a\a")
	pending := ev("bob", "behind the warning")
	pending.Message.KeyPending = true
	check("preview on, unaccepted key", pending, "\x1b]777;notify;pfschat: message from bob;\a\a")
	m.c.bell = false
	check("bell off", ev("bob", "x"), "\x1b]777;notify;pfschat: message from bob;x\a")
	m.c.notifier = Notifier{}
	m.c.bell = true
	check("no notification sequence", ev("bob", "x"), "\a")
	m.c.notify.On = false
	m.c.bell = false
	check("notifications off", ev("bob", "x"), "")

	// /notify stores the setting; preview is off again with /notify on.
	m.command([]string{"/notify", "preview"})
	if !m.c.notify.On || !m.c.notify.Preview {
		t.Errorf("/notify preview: %+v", m.c.notify)
	}
	m.command([]string{"/notify", "on"})
	if !m.c.notify.On || m.c.notify.Preview {
		t.Errorf("/notify on: %+v", m.c.notify)
	}
}

// TestNotificationThroughTheTerminal: a real program writes the sequence to the
// terminal for a message from a contact that is not open, and follows the focus the
// terminal reports.
func TestNotificationThroughTheTerminal(t *testing.T) {
	b := newMemBackend("alice", func() time.Time { return fixedNow })
	b.addContact(chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)})
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)})
	tm, fr := startUI(t, Options{Backend: b, OpenContact: "bob", Bell: true, Notifier: Notifier{Protocol: NotifyOSC9}}, 80, 24)
	fr.WaitText(t, "carol")
	b.events <- chat.Event{Kind: chat.MessageReceived, Contact: "carol", Message: &chat.Message{Contact: "carol", Text: "not shown"}}
	teatest.WaitFor(t, tm.Output(), func(out []byte) bool {
		return strings.Contains(string(out), "\x1b]9;pfschat: message from carol\a\a")
	}, teatest.WithDuration(10*time.Second))
	tm.Send(tea.BlurMsg{})
	b.events <- chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &chat.Message{Contact: "bob", Text: "x"}}
	teatest.WaitFor(t, tm.Output(), func(out []byte) bool {
		return strings.Contains(string(out), "\x1b]9;pfschat: message from bob\a")
	}, teatest.WithDuration(10*time.Second))
}

// TestNotificationsCoalesce: a burst from one contact (the backlog after a start) raises
// one notification; another contact, or the same one after the window, raises its own.
func TestNotificationsCoalesce(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.notifier, m.c.notify, m.c.focused = Notifier{Protocol: NotifyOSC9}, chat.NotifySettings{On: true}, true
	b := m.b.(*memBackend)
	b.addContact(chat.Contact{Name: "carol", CardID: strings.Repeat("c", 64)})
	m.contacts, _ = b.Contacts(t.Context())
	m.open = "bob"
	clock := fixedNow
	m.c.now = func() time.Time { return clock }
	ev := chat.Event{Kind: chat.MessageReceived, Contact: "carol", Message: &chat.Message{Contact: "carol", Text: "x"}}
	var n int
	for i := 0; i < 5; i++ {
		if rawOut(m.notification(ev)) != "" {
			n++
		}
		clock = clock.Add(time.Second)
	}
	if n != 1 {
		t.Fatalf("5 messages within 5 s raised %d notifications, want 1", n)
	}
	clock = clock.Add(notifyCoalesce)
	if rawOut(m.notification(ev)) == "" {
		t.Fatal("no notification after the window")
	}
}

// TestNotifyUsageSaysBellOnly: /notify without an argument says how notifications go
// in this terminal in words — "none" alone did not say that it gets only the bell — and
// the line fits the status bar at 80 columns.
func TestNotifyUsageSaysBellOnly(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.notifier.Protocol = NotifyNone
	m.command([]string{"/notify"})
	if !strings.Contains(m.notice, "this terminal: bell only") {
		t.Fatalf("/notify without notifications: notice %q", m.notice)
	}
	if bar := ansi.Strip(m.statusView(80)); !strings.Contains(bar, m.notice) {
		t.Errorf("at 80 columns the status bar cuts the usage: %q", bar)
	}
	m.c.notifier.Protocol = NotifyOSC9
	m.command([]string{"/notify"})
	if !strings.Contains(m.notice, "as osc9") {
		t.Fatalf("/notify with OSC 9: notice %q", m.notice)
	}
}

// TestBellWhileScrolledBack: with the bell on and the terminal focused, a message in
// the open conversation rings the bell while the view is scrolled back (it arrives
// below, out of sight; the tester heard nothing), and not while the view is at the
// newest message, where it is seen; the desktop notification stays for conversations
// not open or an unfocused terminal. A muted contact rings nothing, scrolled back or not.
func TestBellWhileScrolledBack(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.bell, m.c.focused = true, true
	m.c.notifier, m.c.notify = Notifier{Protocol: NotifyOSC9}, chat.NotifySettings{On: true}
	b := m.b.(*memBackend)
	for i := range 80 {
		b.addMessage(chat.Message{Contact: "bob", Text: fmt.Sprintf("old %d", i), SentAt: fixedNow.Add(-time.Hour)})
	}
	drive(t, m, m.openContact("bob"), "")
	ev := chat.Event{Kind: chat.MessageReceived, Contact: "bob", Message: &chat.Message{Contact: "bob", Text: "x"}}
	if out := rawOut(m.notification(ev)); out != "" {
		t.Fatalf("at the newest message, focused: %q, want nothing", out)
	}
	_, cmd := m.Update(keyMsg("pgup"))
	drive(t, m, cmd, "")
	if m.conv().atBottom() {
		t.Fatal("pgup did not scroll back")
	}
	if out := rawOut(m.notification(ev)); out != "\a" {
		t.Fatalf("scrolled back: %q, want the bell (and no desktop notification: the terminal has the focus)", out)
	}
	m.contacts[0].Muted = true
	m.c.notified = nil
	if out := rawOut(m.notification(ev)); out != "" {
		t.Fatalf("muted, scrolled back: %q, want nothing", out)
	}
}
