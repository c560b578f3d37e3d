// Package ui is pfschat's terminal interface, built on Bubble Tea v2, Lip Gloss v2 and
// Bubbles: onboarding, unlock, the contact list and conversation, verification, key
// changes and help.
//
// The UI talks to the chat controller only through the [Backend] interface, which
// *chat.Controller satisfies, and only from tea.Cmds: Update never blocks on storage or
// the network. Incoming messages, receipts and connection changes arrive through a
// command that waits on Backend.Events and re-arms itself after every event.
//
// Running it:
//
//	app := ui.New(ctx, ui.Options{Profile: p})      // onboarding or unlock, then main
//	app := ui.New(ctx, ui.Options{Backend: ctrl})   // straight to the main screen
//	app := ui.New(ctx, ui.Options{Start: make})     // "starting…" while make runs, then main
//	_, err := tea.NewProgram(app).Run()
//
// or [Run], which also closes the backend the UI ended with. The package is a library of
// screens: it starts no servers, opens no stores and parses no flags. The command layer,
// pfschat/chat/cli, does that for `pfschat` (profile, passphrase, log file) and
// `pfschat demo` (an in-process relay, a throwaway profile and an echo contact), and
// hands the UI a [Profile] ([NewChatProfile]), a ready [Backend], or (the demo) a
// function that makes one.
//
// Layout of the package: app.go is the root model (one screen plus a stack of dialogs);
// onboarding.go, mainscreen.go and dialogs.go are the screens and dialogs; the main
// screen's views are contactlist.go, conversationview.go (the pane and the message
// renderer) and statusbar.go; conversation.go is the lazy scrollback (pages of 50
// loaded while scrolling up, each message rendered once per width and cached, only
// visible lines drawn, so 100,000 messages scroll as fast as ten); slashcommands.go is
// the table of slash commands the dispatcher and the help dialog both read; styles.go
// holds every style (light and dark palettes from assets/theme.json) and keys.go every
// key binding. Tests drive the UI with teatest against real controllers and an
// in-process relay; golden files pin the main screen at 100×30 (`go test ./ui -run
// Golden -update` regenerates them).
package ui
