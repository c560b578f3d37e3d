package chat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"pfschat/chat/profile"
	"pfschat/storage"
)

// Your data, your way (issue 13 point 12): backup, restore, passphrase change, local
// deletion of messages.

// ErrBadBackup: the file is not a pfschat profile backup, or it was cut or altered.
var ErrBadBackup = storage.ErrBadBackup

// ErrHomeNotEmpty: a restore goes only into an empty profile directory.
var ErrHomeNotEmpty = errors.New("chat: the profile directory is not empty")

// Backup writes a sealed copy of the profile to dst, a new file (never overwritten),
// while the profile may be open in another process (the UI or the daemon): SQLite's
// VACUUM INTO takes one consistent snapshot. passphrase must be the profile's; the copy
// is sealed under it (storage.BackupClient).
func (p Profile) Backup(ctx context.Context, dst string, passphrase []byte) error {
	if !p.Exists() {
		return fmt.Errorf("%w: %s", ErrNoProfile, p.StorePath())
	}
	if err := storage.BackupClient(ctx, p.StorePath(), dst, passphrase); err != nil {
		return fmt.Errorf("chat: backup: %w", err)
	}
	return nil
}

// Restore makes the profile from a backup, only in an empty (or missing) profile
// directory: it never replaces a profile. passphrase is the one the backup was made
// with. Every ratchet session is dropped (an old state must not send), so each
// conversation starts a new session with its next message.
func (p Profile) Restore(ctx context.Context, src string, passphrase []byte) error {
	// Refused before anything is made in it (a lock file included), and again under
	// the lock, against a restore or an init racing this one.
	if err := p.refuseNotEmpty(); err != nil {
		return err
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("chat: restore: %w", err)
	}
	// Only its owner may enter it, as a new profile's (Create): an empty directory
	// made beforehand by hand has the umask's mode, 0755 as a rule.
	if err := os.Chmod(p.Dir, 0o700); err != nil {
		return fmt.Errorf("chat: restore: %w", err)
	}
	lock, err := p.lock()
	if err != nil {
		return err
	}
	defer lock.Release()
	if err := p.refuseNotEmpty(); err != nil {
		return err
	}
	if err := storage.RestoreClient(ctx, src, p.StorePath(), passphrase); err != nil {
		return fmt.Errorf("chat: restore: %w", err)
	}
	return nil
}

// refuseNotEmpty is ErrHomeNotEmpty when the profile directory holds anything but its
// lock file and a relay's default database (the default profile directory is also where
// 'pfschat relay' keeps relay.db: its files are not a profile's, and a restore does not
// touch them); a missing directory is empty.
func (p Profile) refuseNotEmpty() error {
	entries, err := os.ReadDir(p.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("chat: restore: %w", err)
	}
	for _, e := range entries {
		if e.Name() != profile.LockFile && !profile.IsRelayFile(e.Name()) {
			return fmt.Errorf("%w: %s holds %s; restore into a new --home DIR (a restore never replaces a profile)", ErrHomeNotEmpty, p.Dir, e.Name())
		}
	}
	return nil
}

// Files splits what the profile directory holds into the profile's own files — its
// store and the files SQLite keeps beside it, its lock, its owner's socket and HTTP
// secret (every name that starts with "pfschat."), and its attachments directory — and
// the others, which are not the profile's (in the default directory, a relay's
// database: profile.IsRelayFile). Both are sorted by name.
func (p Profile) Files() (own, others []string, err error) {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("chat: listing the profile directory: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pfschat.") || (e.Name() == attachmentDirName && e.IsDir()) {
			own = append(own, e.Name())
		} else {
			others = append(others, e.Name())
		}
	}
	return own, others, nil
}

// ChangePassphrase re-wraps the profile's storage key under a new passphrase; nothing
// else is rewritten. Backups made before still open with the old one.
func (c *Controller) ChangePassphrase(ctx context.Context, newPassphrase []byte) error {
	if len(newPassphrase) == 0 {
		return fmt.Errorf("chat: change passphrase: %w", storage.ErrEmptyPassphrase)
	}
	if err := c.store.ChangePassphrase(ctx, newPassphrase); err != nil {
		return fmt.Errorf("chat: change passphrase: %w", err)
	}
	return nil
}

// DeleteMessage deletes one message of a conversation from this profile only (the
// peer keeps theirs; a message still in the outbox is still sent). A file it brought
// is not fetched any more, and what a download of it left is removed (a file already
// saved stays where it was saved); a download under way fails with ErrUnknownMessage
// and saves nothing.
func (c *Controller) DeleteMessage(ctx context.Context, contact string, id int64) error {
	if _, err := c.contactRow(ctx, contact); err != nil {
		return err
	}
	var files []string // an incoming attachment: what its download left goes too
	if m, err := c.store.Message(ctx, id); err == nil && m.Direction == storage.Incoming && m.ClientID != "" {
		files = []string{m.ClientID}
	}
	if err := c.store.DeleteMessage(ctx, contact, id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: %s has no message %d", ErrUnknownMessage, contact, id)
		}
		return fmt.Errorf("chat: delete message: %w", err)
	}
	c.dropPartials(files)
	c.emit(Event{Kind: MessagesDeleted, Contact: contact, Message: &Message{ID: id, Contact: contact}})
	return nil
}

// ErrUnknownMessage: no such message in the conversation.
var ErrUnknownMessage = errors.New("chat: no such message")

// ClearConversation deletes every message of a conversation from this profile and
// returns how many; the contact stays.
func (c *Controller) ClearConversation(ctx context.Context, contact string) (int, error) {
	if _, err := c.contactRow(ctx, contact); err != nil {
		return 0, err
	}
	files, err := c.store.IncomingAttachmentIDs(ctx, contact)
	if err != nil {
		return 0, fmt.Errorf("chat: clear conversation: %w", err)
	}
	n, err := c.store.ClearConversation(ctx, contact)
	if err != nil {
		return 0, fmt.Errorf("chat: clear conversation: %w", err)
	}
	c.dropPartials(files)
	if n > 0 {
		c.emit(Event{Kind: MessagesDeleted, Contact: contact})
	}
	return n, nil
}
