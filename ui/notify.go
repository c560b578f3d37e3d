package ui

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

// Desktop notifications (issue 13 point 10). A new message in a conversation that is
// not on screen, or any message while the terminal is not focused (Bubble Tea reports
// focus), raises a notification through the terminal's escape sequence — OSC 777, OSC 9
// or OSC 99, chosen from the environment — and rings the bell (/bell). A notification
// names the sender only; the text is shown only when the user turned previews on
// (/notify preview). Muted contacts (/mute) raise none.

// NotifyProtocol is the escape sequence a terminal shows desktop notifications for.
type NotifyProtocol int

const (
	NotifyNone   NotifyProtocol = iota // no desktop notification (the bell still rings)
	NotifyOSC9                         // ESC ] 9 ; text BEL — iTerm2, Windows Terminal, WezTerm, ghostty
	NotifyOSC777                       // ESC ] 777 ; notify ; title ; body BEL — VTE, foot, urxvt, WezTerm, ghostty
	NotifyOSC99                        // ESC ] 99 ; metadata ; payload ESC \ — kitty
)

func (p NotifyProtocol) String() string {
	switch p {
	case NotifyOSC9:
		return "osc9"
	case NotifyOSC777:
		return "osc777"
	case NotifyOSC99:
		return "osc99"
	}
	return "none"
}

// EnvNotify overrides the detection: osc9, osc777, osc99 or none.
const EnvNotify = "PFSCHAT_NOTIFY"

// Notifier is how the UI raises desktop notifications; DetectNotifier makes it.
type Notifier struct {
	Protocol NotifyProtocol
	// Tmux wraps the sequence for tmux's passthrough (the pane needs
	// `set -g allow-passthrough on`), so it reaches the terminal around tmux.
	Tmux bool
}

// DetectNotifier chooses the notification sequence from the environment (getenv is
// os.Getenv): $PFSCHAT_NOTIFY when set, else by terminal — kitty → OSC 99; iTerm2,
// WezTerm, ghostty, Windows Terminal → OSC 9; VTE (GNOME Terminal and others), foot,
// urxvt → OSC 777; anything else → none (the bell only).
func DetectNotifier(getenv func(string) string) Notifier {
	n := Notifier{Tmux: getenv("TMUX") != ""}
	switch strings.ToLower(getenv(EnvNotify)) {
	case "osc9":
		n.Protocol = NotifyOSC9
		return n
	case "osc777":
		n.Protocol = NotifyOSC777
		return n
	case "osc99":
		n.Protocol = NotifyOSC99
		return n
	case "none", "off":
		return n
	}
	term, prog := getenv("TERM"), getenv("TERM_PROGRAM")
	switch {
	case getenv("KITTY_WINDOW_ID") != "" || term == "xterm-kitty":
		n.Protocol = NotifyOSC99
	case prog == "iTerm.app" || prog == "WezTerm" || prog == "ghostty" || term == "xterm-ghostty" || getenv("WT_SESSION") != "":
		n.Protocol = NotifyOSC9
	case getenv("VTE_VERSION") != "" || strings.HasPrefix(term, "foot") || strings.HasPrefix(term, "rxvt-unicode"):
		n.Protocol = NotifyOSC777
	}
	return n
}

// notifyCoalesce is how long after a notification for a contact further messages from
// them raise none.
const notifyCoalesce = 5 * time.Second

// maxNotifyText bounds a notification's title and body, in runes.
const maxNotifyText = 120

// notifyText makes text safe inside an escape sequence: every control character
// (Unicode Cc: C0, DEL, C1) and the separators of the sequences (';' in OSC 777's
// fields) become spaces, runs of space collapse, and it is cut to maxNotifyText runes.
func notifyText(s string, semicolons bool) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (semicolons && r == ';') || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if n >= maxNotifyText {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// Sequence is the escape sequence that raises a notification with title and body ("" for
// NotifyNone). id numbers a kitty notification.
func (n Notifier) Sequence(id int, title, body string) string {
	var seq string
	switch n.Protocol {
	case NotifyOSC9:
		text := notifyText(title, false)
		if b := notifyText(body, false); b != "" {
			text += ": " + b
		}
		seq = "\x1b]9;" + text + "\a"
	case NotifyOSC777:
		seq = "\x1b]777;notify;" + notifyText(title, true) + ";" + notifyText(body, true) + "\a"
	case NotifyOSC99:
		sid := "i=" + strconv.Itoa(id)
		seq = "\x1b]99;" + sid + ":d=0:p=title;" + notifyText(title, false) + "\x1b\\" +
			"\x1b]99;" + sid + ":d=1:p=body;" + notifyText(body, false) + "\x1b\\"
	default:
		return ""
	}
	if n.Tmux {
		// tmux passthrough: DCS tmux; with every ESC doubled, ended by ST.
		seq = "\x1bPtmux;" + strings.ReplaceAll(seq, "\x1b", "\x1b\x1b") + "\x1b\\"
	}
	return seq
}

// notifySettings is implemented by backends that keep the notification settings in the
// profile (*chat.Controller).
type notifySettings interface {
	NotifySettings(ctx context.Context) chat.NotifySettings
	SetNotifySettings(ctx context.Context, s chat.NotifySettings) error
}

// notification is what the UI raises for one incoming message, or nil: nothing for
// a message on screen in a focused terminal, for a muted contact, or with
// notifications off; the bell alone when the terminal has no notification sequence,
// and for the open conversation in a focused terminal when the message is not in view
// (scrolled back — it arrives below, "↓ N new" —, under a dialog, behind the list of a
// narrow terminal): the user is at the terminal, only not looking at it.
func (m *mainScreen) notification(ev chat.Event) tea.Cmd {
	if ev.Message == nil || ev.Message.Outgoing {
		return nil
	}
	atOpen := ev.Contact == m.open && m.c.focused
	if atOpen && m.openInView() || !m.c.notify.On {
		return nil
	}
	ct, _ := m.contact(ev.Contact)
	if ct.Muted || ct.Blocked {
		return nil
	}
	// A burst (the backlog after a start, a pasted series) raises one notification per
	// contact, not one per message.
	now := m.c.now()
	if last, ok := m.c.notified[ev.Contact]; ok && now.Sub(last) < notifyCoalesce && !now.Before(last) {
		return nil
	}
	if m.c.notified == nil {
		m.c.notified = make(map[string]time.Time)
	}
	m.c.notified[ev.Contact] = now
	var out string
	if m.c.notifier.Protocol != NotifyNone && !atOpen {
		who := m.displayName(ev.Contact)
		if ct.Request {
			who = "message request from " + who
		} else {
			who = "message from " + who
		}
		body := ""
		if m.c.notify.Preview && !ev.Message.KeyPending && ev.Kind == chat.MessageReceived {
			body = ev.Message.Text
		}
		m.c.notifySeq++
		out = m.c.notifier.Sequence(m.c.notifySeq, "pfschat: "+who, body)
	}
	if m.c.bell {
		out += "\a"
	}
	if out == "" {
		return nil
	}
	return tea.Raw(out)
}

// openInView: the open conversation's newest message is on screen (paneInView, and the
// view at the bottom, where an arriving message goes).
func (m *mainScreen) openInView() bool {
	cv := m.convs[m.open]
	return m.paneInView() && (cv == nil || cv.atBottom())
}

// runNotify is /notify on (sender only) | off | preview (with the text).
func runNotify(m *mainScreen, args []string) tea.Cmd {
	s := m.c.notify
	switch strings.Join(args, " ") {
	case "on":
		s.On, s.Preview = true, false
	case "off":
		s.On = false
	case "preview":
		s.On, s.Preview = true, true
	default:
		// "none" alone did not say that this terminal gets no notification, only the bell.
		how := "as " + m.c.notifier.Protocol.String()
		if m.c.notifier.Protocol == NotifyNone {
			how = "this terminal: bell only"
		}
		m.setNotice("usage: /notify on|off|preview — now "+s.String()+" ("+how+")", true)
		return nil
	}
	m.c.notify = s
	m.setNotice("notifications "+s.String(), false)
	if ns, ok := m.b.(notifySettings); ok {
		return m.c.op("notify", "", func(ctx context.Context) error { return ns.SetNotifySettings(ctx, s) })
	}
	return nil
}

// notifySettingsMsg carries the profile's notification settings, read at start.
type notifySettingsMsg chat.NotifySettings

func (m *mainScreen) loadNotifySettings() tea.Cmd {
	ns, ok := m.b.(notifySettings)
	if !ok {
		return nil
	}
	return func() tea.Msg {
		ctx, cancel := m.c.opCtx()
		defer cancel()
		return notifySettingsMsg(ns.NotifySettings(ctx))
	}
}
