package chat_test

import (
	"errors"
	"testing"

	"pfschat/chat/chattest"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// Every way of opening a profile takes its lock: while alice's controller is open, a
// second Open, NewController or OpenStore is refused with the holder named, before
// the store is unlocked; once she closes, the profile opens again.
func TestProfileOpenersShareOneLock(t *testing.T) {
	r := relaytest.Start(t)
	alice := chattest.NewUser(t, r, "alice")
	p := alice.Profile
	if _, err := p.Open(t.Context(), alice.Passphrase); !errors.Is(err, profile.ErrLocked) {
		t.Fatalf("Open while open: %v, want ErrLocked", err)
	}
	if _, err := p.NewController(t.Context(), alice.Passphrase); !errors.Is(err, profile.ErrLocked) {
		t.Fatalf("NewController while open: %v, want ErrLocked", err)
	}
	if _, err := p.OpenStore(t.Context(), []byte("wrong passphrase")); !errors.Is(err, profile.ErrLocked) {
		t.Fatalf("OpenStore while open: %v, want ErrLocked (before the passphrase is even tried)", err)
	}
	var le *profile.LockedError
	_, err := p.Open(t.Context(), alice.Passphrase)
	if !errors.As(err, &le) || le.Kind != profile.OwnerCommand {
		t.Fatalf("error %v does not name the holder", err)
	}
	alice.Reopen() // closes, then opens: the lock was given back
	if _, err := alice.Contacts(t.Context()); err != nil {
		t.Fatal(err)
	}
}
