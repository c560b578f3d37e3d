package ui

// The relay-key mismatch banner and the UI's re-pin: when the relay presents a key
// other than the pinned one, the main screen says so above the conversation with both
// fingerprints and what to do, the controller keeps retrying the pinned key, and
// /repin replaces the pin after the user confirmed the new fingerprint in a dialog.

import (
	"context"
	"errors"
	"fmt"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"pfschat/chat"
)

// RelayRepinner is implemented by backends that can re-pin the relay key while they
// run (*chat.Controller): presented is the fingerprint the user confirmed; the pin is
// replaced only if the relay still proves that key.
type RelayRepinner interface {
	RepinRelay(ctx context.Context, presented string) error
}

// relayKeyBannerMax is the most rows the banner takes from the conversation.
const relayKeyBannerMax = 4

// relayKeyMismatch returns the mismatch a connection state reports, if any.
func relayKeyMismatch(st chat.ConnState) *chat.RelayKeyChangedError {
	var rk *chat.RelayKeyChangedError
	if st.Err != nil && errors.As(st.Err, &rk) && rk.Presented != "" {
		return rk
	}
	return nil
}

// relayKeyText is what the banner says.
func relayKeyText(rk *chat.RelayKeyChangedError) string {
	return fmt.Sprintf("⚠ The relay's key changed. Pinned: %s. The relay now presents: %s. "+
		"Someone may be impersonating the relay: nothing is sent to it, and pfschat keeps retrying the pinned key. "+
		"If the relay's operator announced this new key, compare the fingerprint, then type /repin.",
		rk.Pinned, rk.Presented)
}

// bannerRows is the banner, wrapped to w and at most relayKeyBannerMax rows, each
// exactly w wide; nil when there is no mismatch.
func (m *mainScreen) bannerRows(w int) []string {
	if m.relayKey == nil && m.conn.Status == chat.Offline && m.conn.Err != nil {
		// The connection stopped for good (the identity replaced by a recovery on
		// another device, say): "○ offline" alone said neither why nor what to do.
		lines := splitLines(lipgloss.Wrap("○ offline: "+errText(m.conn.Err), w, ""))
		if m.c.height < minTerminalHeight+2*relayKeyBannerMax {
			lines = lines[:1]
		} else if len(lines) > relayKeyBannerMax {
			lines = lines[:relayKeyBannerMax]
		}
		for i, l := range lines {
			lines[i] = fitLine(m.c.styles.StatusBad.Render(l), w)
		}
		return lines
	}
	if m.relayKey == nil {
		return nil
	}
	if m.c.height < minTerminalHeight+2*relayKeyBannerMax {
		// A short terminal gets one line; /repin's dialog says the rest.
		return []string{fitLine(m.c.styles.KeyChanged.Render("⚠ relay key changed — /repin to review"), w)}
	}
	lines := splitLines(lipgloss.Wrap(relayKeyText(m.relayKey), w, ""))
	if len(lines) > relayKeyBannerMax {
		lines = lines[:relayKeyBannerMax]
	}
	for i, l := range lines {
		lines[i] = fitLine(m.c.styles.KeyChanged.Render(l), w)
	}
	return lines
}

// repinCommand is /repin: a confirmation dialog with both fingerprints.
func (m *mainScreen) repinCommand() tea.Cmd {
	rk := m.relayKey
	if rk == nil {
		m.setNotice("the relay's key matches the pinned one; nothing to re-pin", false)
		return nil
	}
	rp, ok := m.b.(RelayRepinner)
	if !ok {
		m.setNotice("this profile cannot re-pin here; quit and run 'pfschat repin'", true)
		return nil
	}
	presented := rk.Presented
	return pushDialog(newConfirmDialog(m.c, "Re-pin the relay key", relayRepinText(rk),
		m.c.op("repin", "", func(ctx context.Context) error { return rp.RepinRelay(ctx, presented) })))
}

// relayRepinText is the re-pin confirmation: both fingerprints, and when to say yes.
func relayRepinText(rk *chat.RelayKeyChangedError) string {
	return fmt.Sprintf("Replace the pinned relay key?\n\nold (pinned):  %s\nnew (relay):   %s\n\n"+
		"Only say yes if the relay's operator announced the new fingerprint and it matches exactly. "+
		"Otherwise someone may be impersonating the relay: say no, and pfschat keeps waiting for the pinned key.",
		rk.Pinned, rk.Presented)
}
