package ui

import (
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// RecoveryCodeHolder is implemented by backends that hold the recovery code made
// when the profile was created (*chat.Controller): the UI shows it once, right after
// onboarding, and it is then gone.
type RecoveryCodeHolder interface {
	TakeRecoveryCode() string
}

// recoveryCodeDialog shows a new account's recovery code once. Only Enter closes it,
// so a stray Esc does not hide a code the user has not written down.
type recoveryCodeDialog struct {
	dialogBase
	c    *common
	code string
}

func newRecoveryCodeDialog(c *common, code string) *recoveryCodeDialog {
	return &recoveryCodeDialog{c: c, code: code}
}

func (d *recoveryCodeDialog) Update(msg tea.Msg) (dialog, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok && k.String() == "enter" {
		d.code = ""
		d.finish()
	}
	return d, nil
}

func (d *recoveryCodeDialog) View() string {
	w := d.c.dialogWidth(60)
	text := "Write this down and keep it apart from this computer. It is shown only now and stored nowhere here.\n\n" +
		d.c.styles.StatusNote.Render(d.code) + "\n\n" +
		"If this computer or your passphrase is lost, 'pfschat recover NAME' gets your name back with it " +
		"(your contacts will be asked to confirm your new key). Anyone who has it can take your name."
	body := lipgloss.Wrap(text, w, "") + "\n\n" + d.c.hint("enter", "I wrote it down")
	return d.c.frame(&d.dialogBase, "Your recovery code", body, w)
}

// recoveryCodeCmd opens the dialog when b holds a new code.
func recoveryCodeCmd(c *common, b Backend) tea.Cmd {
	h, ok := b.(RecoveryCodeHolder)
	if !ok {
		return nil
	}
	code := h.TakeRecoveryCode()
	if code == "" {
		return nil
	}
	return pushDialog(newRecoveryCodeDialog(c, code))
}
