package ui

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// newTestMainScreen is a main screen over a memBackend holding bob, without a program
// around it: the slash command tests call its methods directly.
func newTestMainScreen(t *testing.T) *mainScreen {
	t.Helper()
	c := &common{ctx: t.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: 120, height: 40,
		now: func() time.Time { return fixedNow }, loc: time.UTC, log: slog.New(slog.DiscardHandler)}
	b := newMemBackend("alice", c.now)
	bob := chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64)}
	b.addContact(bob)
	m := newMainScreen(c, b, "")
	m.contacts = []chat.Contact{bob}
	return m
}

// TestSlashCommandTable walks the table: every listed command has its line in the help
// dialog, and every name and alias reaches its handler.
func TestSlashCommandTable(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.height = 200 // the whole help, unscrolled
	help := strings.Split(ansi.Strip(newHelpDialog(m.c).View()), "\n")
	var unlisted []string
	for _, sc := range slashCommands {
		if sc.help == "" {
			unlisted = append(unlisted, sc.name)
		} else if i := slices.IndexFunc(help, func(l string) bool {
			return strings.Contains(l, " "+sc.usage()+" ")
		}); i < 0 || !strings.Contains(help[i], sc.help) && (i+1 == len(help) ||
			// a usage longer than the column has its text on the next line, at the column
			!strings.Contains(help[i+1], strings.Repeat(" ", helpUsageWidth+3)+sc.help)) {
			t.Errorf("%s: no help line %q / %q in the help dialog:\n%s", sc.name, sc.usage(), sc.help, strings.Join(help, "\n"))
		}
		for _, name := range append([]string{sc.name}, sc.aliases...) {
			m.open = "bob"
			m.setNotice("", false)
			words := []string{name}
			if strings.HasPrefix(sc.args, "on|off") {
				words = append(words, "off")
			} else if sc.args == "PATH" {
				p := filepath.Join(t.TempDir(), "carol.txt")
				os.WriteFile(p, []byte("hi"), 0o600)
				words = append(words, p)
			} else if sc.args != "" && !strings.HasPrefix(sc.args, "[") {
				words = append(words, "carol")
			}
			cmd := m.command(words)
			if m.noticeErr {
				t.Errorf("%s: did not dispatch: %q", name, m.notice)
				continue
			}
			if cmd == nil {
				if m.notice == "" {
					t.Errorf("%s: dispatched to nothing: no command, no notice", name)
				}
				continue
			}
			if msg := cmd(); msg == nil {
				t.Errorf("%s: its command returned no message", name)
			}
		}
	}
	// Only /help stays out of its own listing; a new command comes with its help line.
	if !slices.Equal(unlisted, []string{"/help"}) {
		t.Errorf("commands missing from the help dialog: %v, want only /help", unlisted)
	}
}

// TestSlashCommandNeedsConversation: every command that acts on the open contact gives
// the same error when none is open, typed into the input as a person would.
func TestSlashCommandNeedsConversation(t *testing.T) {
	m := newTestMainScreen(t)
	var tried []string
	for _, sc := range slashCommands {
		if !sc.needsConversation {
			continue
		}
		tried = append(tried, sc.name)
		m.setNotice("", false)
		m.input.SetValue(sc.name)
		if cmd := m.submit(); cmd != nil {
			t.Errorf("%s with no conversation open returned a command", sc.name)
		}
		if want := sc.name + " needs an open conversation"; m.notice != want || !m.noticeErr {
			t.Errorf("%s: notice %q (error %v), want the error %q", sc.name, m.notice, m.noticeErr, want)
		}
	}
	if !slices.Contains(tried, "/verify") {
		t.Fatalf("/verify does not need an open conversation; commands tried: %v", tried)
	}
}

// TestAcceptWithoutKeyChange: /accept when the open contact's key has not changed says
// so as a plain notice and opens no warning dialog; with a pending change it opens the
// review dialog.
func TestAcceptWithoutKeyChange(t *testing.T) {
	m := newTestMainScreen(t)
	m.open = "bob"
	if cmd := m.command([]string{"/accept"}); cmd != nil {
		t.Errorf("/accept with no key change returned a command (%T): a warning dialog for nothing", cmd())
	}
	if want := "bob's key has not changed; nothing to accept"; m.notice != want || m.noticeErr {
		t.Errorf("notice %q (error %v), want the plain notice %q", m.notice, m.noticeErr, want)
	}
	m.contacts[0].KeyChanged = true
	cmd := m.command([]string{"/accept"})
	if cmd == nil {
		t.Fatal("/accept with a pending key change opened nothing")
	}
	if msg, ok := cmd().(pushDialogMsg); !ok {
		t.Errorf("/accept with a pending key change: %T, want the key-change dialog", msg)
	}
	// A message held behind the change can be on screen before the contact list is
	// reloaded with it: /accept believes the screen.
	m.contacts[0].KeyChanged = false
	m.conv().appendMsg(chat.Message{Contact: "bob", Text: "from the new phone", KeyPending: true, SentAt: fixedNow}, time.UTC)
	cmd = m.command([]string{"/accept"})
	if cmd == nil {
		t.Fatal("/accept beside a message held behind the key change opened nothing")
	}
	if msg, ok := cmd().(pushDialogMsg); !ok {
		t.Errorf("/accept beside a held message: %T, want the key-change dialog", msg)
	}
}

// TestOpenUnknownContactRefused: --open NAME (Options.OpenContact) with a name that is
// no contact says so as an error instead of silently showing another conversation; a
// known name opens.
func TestOpenUnknownContactRefused(t *testing.T) {
	m := newTestMainScreen(t)
	m = newMainScreen(m.c, m.b, "carol")
	m.onContacts(contactsMsg{list: []chat.Contact{{Name: "bob", CardID: strings.Repeat("b", 64)}}})
	if want := `cannot open "carol": no such contact; add them with /add carol`; m.notice != want || !m.noticeErr {
		t.Errorf("--open carol with only bob: notice %q (error %v), want the error %q", m.notice, m.noticeErr, want)
	}
	m = newMainScreen(m.c, m.b, "bob")
	m.onContacts(contactsMsg{list: []chat.Contact{{Name: "bob", CardID: strings.Repeat("b", 64)}}})
	if m.noticeErr || m.open != "bob" {
		t.Errorf("--open bob: open %q, notice %q", m.open, m.notice)
	}
}

// TestReAddVerifiedContact: adding a contact that is already verified (same key) says
// so instead of "added … compare safety numbers".
func TestReAddVerifiedContact(t *testing.T) {
	m := newTestMainScreen(t)
	m.Update(addedMsg{name: "bob", contact: chat.Contact{Name: "bob", CardID: strings.Repeat("b", 64), Verified: true}})
	if want := "bob is already a verified contact; the key has not changed"; m.notice != want || m.noticeErr {
		t.Errorf("re-adding verified bob: notice %q (error %v), want %q", m.notice, m.noticeErr, want)
	}
}

// TestNoticesExpire: a notice set by any message arms its expiry; when it fires the
// notice is gone, but an expiry armed for an older notice leaves a newer one alone.
func TestNoticesExpire(t *testing.T) {
	m := newTestMainScreen(t)
	m.noticeTTL = time.Millisecond // the tick is the message the test waits for
	m.open = "bob"
	expiry := func(cmd tea.Cmd) tea.Msg {
		t.Helper()
		var found tea.Msg
		var walk func(tea.Cmd)
		walk = func(c tea.Cmd) {
			if c == nil || found != nil {
				return
			}
			switch msg := c().(type) {
			case tea.BatchMsg:
				for _, c := range msg {
					walk(c)
				}
			case noticeExpiredMsg:
				found = msg
			}
		}
		walk(cmd)
		if found == nil {
			t.Fatal("setting a notice armed no expiry")
		}
		return found
	}
	m.input.SetValue("/accept")
	_, cmd := m.Update(keyMsg("enter"))
	if m.notice == "" {
		t.Fatal("/accept set no notice")
	}
	first := expiry(cmd)
	m.input.SetValue("/frobnicate")
	_, cmd = m.Update(keyMsg("enter"))
	second := m.notice
	if second == "" || !m.noticeErr {
		t.Fatalf("an unknown command set no error notice: %q", second)
	}
	m.Update(first)
	if m.notice != second {
		t.Fatalf("an older notice's expiry cleared the newer %q (now %q)", second, m.notice)
	}
	m.Update(expiry(cmd))
	if m.notice != "" {
		t.Fatalf("notice %q did not expire", m.notice)
	}
}

// TestErrTextIsASentence: the UI prints an error's user-facing part — no package
// prefixes, no repeated parts.
func TestErrTextIsASentence(t *testing.T) {
	err := fmt.Errorf("chat: sending to bob: %w", fmt.Errorf("chat: sending to bob: %w", errors.New("storage: disk full")))
	if got, want := errText(err), "sending to bob: disk full"; got != want {
		t.Errorf("errText = %q, want %q", got, want)
	}
}

// TestHelpDialogListsEveryKey: at 80 and 120 columns the help dialog shows every key of
// the full help with its text, none cut to "…", and every command's text starts at the
// same column.
func TestHelpDialogListsEveryKey(t *testing.T) {
	for _, width := range []int{80, 120} {
		m := newTestMainScreen(t)
		m.c.width, m.c.height = width, 200
		v := ansi.Strip(newHelpDialog(m.c).View())
		if strings.Contains(v, "…") {
			t.Errorf("%d columns: the help is cut:\n%s", width, v)
		}
		for _, group := range m.c.keys.FullHelp() {
			for _, b := range group {
				if !strings.Contains(v, b.Help().Key) || !strings.Contains(v, b.Help().Desc) {
					t.Errorf("%d columns: key %q (%s) missing from the help:\n%s", width, b.Help().Key, b.Help().Desc, v)
				}
			}
		}
		col := -1
		for _, sc := range slashCommands {
			if sc.help == "" {
				continue
			}
			for _, l := range strings.Split(v, "\n") {
				if i := strings.Index(l, sc.help); i >= 0 {
					if col < 0 {
						col = i
					} else if i != col {
						t.Errorf("%d columns: %s's text starts at column %d, the others at %d:\n%s", width, sc.name, i, col, v)
					}
				}
			}
		}
	}
}

// TestHelpDialogWrapsUnderItsColumn: at 80 columns a command's text too long for its
// line goes on under the texts' column, and a mark's line under the marks (both went
// back to the left edge, where they read as the start of a command or a section).
func TestHelpDialogWrapsUnderItsColumn(t *testing.T) {
	m := newTestMainScreen(t)
	m.c.width, m.c.height = 80, 200
	v := strings.Split(ansi.Strip(newHelpDialog(m.c).View()), "\n")
	left := -1
	for _, l := range v {
		if i := strings.Index(l, "Commands (type them"); i >= 0 {
			left = i
		}
	}
	if left < 0 {
		t.Fatalf("no commands in the help:\n%s", strings.Join(v, "\n"))
	}
	section, wrapped := "", 0
	for _, full := range v {
		l := strings.TrimRight(strings.TrimSuffix(strings.TrimRight(full, " "), "│"), " ")
		if len(l) <= left {
			if section == "marks" {
				section = "" // the marks end at a blank line
			}
			continue
		}
		l = l[left:]
		indent := len(l) - len(strings.TrimLeft(l, " "))
		switch {
		case strings.HasPrefix(l, "Commands"):
			section = "commands"
		case strings.HasPrefix(l, "Marks:"):
			section = "marks"
		case section == "commands" && indent != 2 && indent != helpUsageWidth+3:
			t.Errorf("a command's line starts at column %d, not at the commands (2) or their texts (%d): %q", indent, helpUsageWidth+3, l)
		case section == "marks" && indent != len("Marks: "):
			t.Errorf("a mark's line starts at column %d, not under the marks (%d): %q", indent, len("Marks: "), l)
		case section == "commands" && indent == helpUsageWidth+3:
			wrapped++
		}
	}
	if wrapped == 0 {
		t.Fatalf("no command's text went on a line of its own at 80 columns: the test checks nothing:\n%s", strings.Join(v, "\n"))
	}
}

// TestWhoamiAt80Columns: at 80 columns /whoami's line does not fit the status bar (it
// was cut in the middle of the relay's key, the one to compare with its operator's):
// its three parts show whole in a dialog, and Esc closes it.
func TestWhoamiAt80Columns(t *testing.T) {
	b := fpBackend{newMemBackend("alice", func() time.Time { return fixedNow })}
	tm, fr := startUI(t, Options{Backend: b, Now: func() time.Time { return fixedNow }}, 80, 24)
	fr.WaitText(t, "No conversation yet")
	tm.Type("/whoami")
	press(tm, "enter")
	frame := fr.WaitText(t, "signed in as alice", "your key 9c01 3f2a 0b45 77de e210", "relay key 3f2a 9c01 77de 0b45 e210")
	checkFrame(t, frame, 80, 24)
	press(tm, "esc")
	fr.WaitFor(t, "the dialog closed", func(s string) bool { return !strings.Contains(s, "relay key") })
}

// "/unmute" is no command (/mute toggles): the notice says so rather than only
// "/help lists them".
func TestUnmutePointsAtMute(t *testing.T) {
	m := newTestMainScreen(t)
	m.input.SetValue("/unmute")
	m.Update(keyMsg("enter"))
	if !m.noticeErr || !strings.Contains(m.notice, "/mute again undoes it") {
		t.Errorf("/unmute: notice %q, want it to point at /mute", m.notice)
	}
}

// TestAddRefusesALongWordInAFewWords: /add with a 160-character word quoted all 160
// characters twice (8 rows of the dialog, a tester): the name is quoted once,
// shortened with "…", with the rule.
func TestAddRefusesALongWordInAFewWords(t *testing.T) {
	m := newTestMainScreen(t)
	word := strings.Repeat("x", 160)
	d := newAddContactDialog(m.c, m.b, word)
	d.Update(d.startCmd()())
	if d.err == "" {
		t.Fatal("a 160-character name was not refused")
	}
	if strings.Contains(d.err, strings.Repeat("x", 40)) || strings.Count(d.err, "“x") != 1 || !strings.Contains(d.err, "x…") {
		t.Fatalf("the error does not quote a shortened name once: %q", d.err)
	}
	view := ansi.Strip(d.View())
	if rows := strings.Count(view, "\n") + 1; rows > 14 {
		t.Fatalf("the dialog is %d rows:\n%s", rows, view)
	}
}

// A typo of a slash command suggests the one meant, as the command line does ("pfschat
// sned" → send): "/hepl" is /help.
func TestUnknownSlashCommandSuggests(t *testing.T) {
	m := newTestMainScreen(t)
	m.input.SetValue("/hepl")
	m.Update(keyMsg("enter"))
	if want := "unknown command /hepl — did you mean /help? /help lists them"; m.notice != want || !m.noticeErr {
		t.Errorf("/hepl: notice %q (error %v), want %q", m.notice, m.noticeErr, want)
	}
	m.input.SetValue("/frobnicate")
	m.Update(keyMsg("enter"))
	if want := "unknown command /frobnicate — /help lists them"; m.notice != want {
		t.Errorf("/frobnicate: notice %q, want %q", m.notice, want)
	}
}
