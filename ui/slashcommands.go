package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// slashCommand is one command typed into the input ("/add bob"). The table below is
// the only list of them: the dispatcher looks commands up in it and the help dialog
// lists it, so a command and its help line cannot drift apart.
type slashCommand struct {
	name    string   // with the slash: "/add"
	aliases []string // other spellings the dispatcher accepts
	args    string   // the arguments as the help shows them ("NAME"); "" for none
	// help is the command's line in the help dialog; "" leaves it out of the listing.
	help string
	// needsConversation commands act on the open contact; with none open they are
	// refused with noConversationNotice and run is not called.
	needsConversation bool
	// run executes the command; args are the words after the name.
	run func(m *mainScreen, args []string) tea.Cmd
}

// usage is the command as the help dialog shows it: name and arguments.
func (sc slashCommand) usage() string {
	if sc.args == "" {
		return sc.name
	}
	return sc.name + " " + sc.args
}

// slashCommands in the order the help dialog lists them.
var slashCommands = []slashCommand{
	{
		name: "/add", args: "NAME", help: "add a contact by user name (trust on first use)",
		run: func(m *mainScreen, args []string) tea.Cmd {
			name := ""
			if len(args) > 0 {
				name = args[0]
			}
			return pushDialog(newAddContactDialog(m.c, m.b, name))
		},
	},
	{
		name: "/verify", help: "compare the safety number with the open contact, mark verified",
		needsConversation: true,
		run: func(m *mainScreen, _ []string) tea.Cmd {
			if ct, ok := m.contact(m.open); ok && ct.KeyChanged {
				// A changed key is compared and accepted first, then verified.
				return pushDialog(newKeyChangedDialog(m.c, m.b, m.open))
			}
			return pushDialog(newVerifyDialog(m.c, m.b, m.open))
		},
	},
	{
		name: "/accept", help: "accept the open contact's changed identity key",
		needsConversation: true,
		run: func(m *mainScreen, _ []string) tea.Cmd {
			// The contact list is reloaded after a message's event: a message held
			// behind the key change may be on screen before the list says so.
			if ct, ok := m.contact(m.open); ok && !ct.KeyChanged && !m.conv().holdsKeyPending() {
				// No false alarm: nothing changed, so no warning dialog either.
				m.setNotice(m.open+"'s key has not changed; nothing to accept", false)
				return nil
			}
			return pushDialog(newKeyChangedDialog(m.c, m.b, m.open))
		},
	},
	{
		name: "/rotate", help: "rotate your prekeys now (100 one-time keys on the relay)",
		run: func(m *mainScreen, _ []string) tea.Cmd {
			b := m.b
			m.setNotice("rotating prekeys…", false)
			return m.c.op("rotate", "", func(ctx context.Context) error { return b.RotateKeys(ctx, 100) })
		},
	},
	{
		name: "/reset", help: "start a fresh session with the open contact",
		needsConversation: true,
		run: func(m *mainScreen, _ []string) tea.Cmd {
			b, name := m.b, m.open
			return pushDialog(newConfirmDialog(m.c, "Reset session",
				fmt.Sprintf("Start a fresh encrypted session with %s?\nMessages already received stay readable, and those already on their way still arrive.", name),
				m.c.op("reset", name, func(ctx context.Context) error { return b.ResetSession(ctx, name) })))
		},
	},
	{
		name: "/receipts", args: "on|off", help: "turn read receipts on or off (sent only to contacts you wrote to)",
		run: func(m *mainScreen, args []string) tea.Cmd {
			rs, ok := m.b.(readReceiptsSetter)
			if len(args) != 1 || (args[0] != "on" && args[0] != "off") || !ok {
				m.setNotice("usage: /receipts on|off", true)
				return nil
			}
			on := args[0] == "on"
			m.setNotice("read receipts "+args[0], false)
			return m.c.op("receipts", "", func(ctx context.Context) error { return rs.SetReadReceipts(ctx, on) })
		},
	},
	{
		name: "/whoami", help: "show your name, your key's fingerprint and the relay's",
		run: func(m *mainScreen, _ []string) tea.Cmd {
			lines := []string{"signed in as " + m.b.Me()} // not "you are you" in the demo, whose user is called you
			if ir, ok := m.b.(identityReporter); ok {
				lines = append(lines, "your key "+ir.Fingerprint())
				if fp := ir.RelayFingerprint(); fp != "" {
					lines = append(lines, "relay key "+fp)
				}
			}
			if text := strings.Join(lines, " · "); ansi.StringWidth(text)+4 <= m.c.width {
				m.setNotice(text, false)
				return nil
			}
			// Too long for the status bar (80 columns cut the relay's key, the one to
			// compare with its operator's): one line each in a dialog.
			return pushDialog(newInfoDialog(m.c, "Who you are", lines...))
		},
	},
	{
		name: "/bell", help: "turn the bell for messages in other conversations on or off",
		run: func(m *mainScreen, _ []string) tea.Cmd {
			m.c.bell = !m.c.bell
			if m.c.bell {
				m.setNotice("bell on for messages in other conversations", false)
			} else {
				m.setNotice("bell off", false)
			}
			return nil
		},
	},
	// U1 (issue 13 points 10–12): notifications, requests and blocking, your data.
	{
		name: "/delete", args: "[N]", help: "delete the newest (or N-th newest) message here, on this device only",
		needsConversation: true, run: runDelete,
	},
	{
		name: "/clear", help: "delete every message of the open conversation, on this device only",
		needsConversation: true, run: runClear,
	},
	{
		name: "/accept-request", help: "accept the open message request: the sender becomes a contact",
		needsConversation: true, run: runAcceptRequest,
	},
	{
		name: "/block", help: "block the open contact: drop their messages; the relay refuses them",
		needsConversation: true, run: runBlock,
	},
	{
		name: "/unblock", help: "unblock the open contact",
		needsConversation: true, run: runUnblock,
	},
	{
		name: "/remove", help: "remove the open contact (or decline the request) with the conversation",
		needsConversation: true, run: runRemove,
	},
	{
		name: "/nick", args: "[NICKNAME]", help: "show the open contact under a name of yours (none: remove it)",
		needsConversation: true, run: runNick,
	},
	{
		name: "/mute", help: "desktop notifications for the open contact off or on again",
		needsConversation: true, run: runMute,
	},
	{
		name: "/notify", args: "on|off|preview", help: "desktop notifications: sender only, off, with text",
		run: runNotify,
	},
	{
		name: "/repin", help: "re-pin the relay's key after it changed (compare first)",
		run: func(m *mainScreen, _ []string) tea.Cmd {
			return m.repinCommand()
		},
	},
	{
		name: "/file", args: "PATH", help: "send a file to the open contact (Tab completes the path)",
		needsConversation: true,
		run:               func(m *mainScreen, args []string) tea.Cmd { return m.fileCommand(args) },
	},
	{
		name: "/open", help: "download the newest file here, or open it (asks first; never programs)",
		needsConversation: true,
		run:               func(m *mainScreen, _ []string) tea.Cmd { return m.openCommand() },
	},
	{
		name: "/download", help: "download the newest file here that is not downloaded (ctrl+o)",
		needsConversation: true,
		run:               func(m *mainScreen, _ []string) tea.Cmd { return m.downloadCommand() },
	},
	{
		name: "/preview", help: "show the newest image here (sixel terminals; kitty shows them inline)",
		needsConversation: true,
		run:               func(m *mainScreen, _ []string) tea.Cmd { return m.previewCommand() },
	},
	{
		// Not listed: whoever reads the listing has found the help already, and the
		// input's placeholder names /help.
		name: "/help",
		run: func(m *mainScreen, _ []string) tea.Cmd {
			return pushDialog(newHelpDialog(m.c))
		},
	},
	{
		name: "/quit", aliases: []string{"/exit", "/q"}, help: "leave pfschat",
		run: func(*mainScreen, []string) tea.Cmd {
			return func() tea.Msg { return quitMsg{} }
		},
	},
}

// readReceiptsSetter is implemented by backends whose read-receipt preference is kept
// in the profile (*chat.Controller).
type readReceiptsSetter interface {
	SetReadReceipts(ctx context.Context, on bool) error
}

// lookupSlashCommand finds a command by its name or one of its aliases.
func lookupSlashCommand(name string) (slashCommand, bool) {
	i := slices.IndexFunc(slashCommands, func(sc slashCommand) bool {
		return sc.name == name || slices.Contains(sc.aliases, name)
	})
	if i < 0 {
		return slashCommand{}, false
	}
	return slashCommands[i], true
}

// nearestSlashCommand is the command name most likely meant by a typo ("/hepl" is
// /help), as the command line suggests its commands, or "".
func nearestSlashCommand(name string) string {
	var names []string
	for _, sc := range slashCommands {
		names = append(names, sc.name)
		names = append(names, sc.aliases...)
	}
	return chat.Nearest(name, names)
}

// noConversationNotice is the one error every needsConversation command gives when no
// conversation is open.
func noConversationNotice(command string) string {
	return command + " needs an open conversation"
}

// command runs a slash command; f is the input split into words, f[0] the command.
func (m *mainScreen) command(f []string) tea.Cmd {
	sc, ok := lookupSlashCommand(f[0])
	if !ok {
		if f[0] == "/unmute" { // /mute toggles
			m.setNotice("unknown command /unmute — /mute again undoes it", true)
			return nil
		}
		if near := nearestSlashCommand(f[0]); near != "" {
			m.setNotice("unknown command "+f[0]+" — did you mean "+near+"? /help lists them", true)
			return nil
		}
		m.setNotice("unknown command "+f[0]+" — /help lists them", true)
		return nil
	}
	if sc.needsConversation && m.open == "" {
		m.setNotice(noConversationNotice(f[0]), true)
		return nil
	}
	return sc.run(m, f[1:])
}

// helpUsageWidth is the column the help texts start at, after the indented usage. A
// usage longer than that stands on a line of its own, its text below at the column (as
// Go's flag package prints long flags), so every text starts at the same column.
const helpUsageWidth = 13

// slashCommandsHelp is the help dialog's list of commands, one line per listed command
// (two for a long usage), above the tips of assets.Help. A text longer than w goes on
// under its own column (it went back to the left edge, under the commands).
func slashCommandsHelp(w int) string {
	lines := []string{"Commands (type them in the input):"}
	for _, sc := range slashCommands {
		if sc.help == "" {
			continue
		}
		if u := sc.usage(); len(u) > helpUsageWidth {
			lines = append(lines, "  "+u, hangWrap(spaces(helpUsageWidth+3), sc.help, w))
		} else {
			lines = append(lines, hangWrap(fmt.Sprintf("  %-*s ", helpUsageWidth, u), sc.help, w))
		}
	}
	return strings.Join(lines, "\n")
}
