package daemon_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/relay/relaytest"
)

// The owner's contact has a new key the user rejected, and there is no session with the
// key the user trusted (reset before): the relay has prekeys only for the rejected key,
// so nothing can go to them. send and sendFile say so with their own code, naming the
// contact and what to do, and send nothing; the CLI, through the owner, reads it as
// package chat's error. Doing what the message says (fingerprint, acceptKey) sends.
func TestSocketSendWithOnlyTheRejectedKeyOnTheRelay(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := chattest.NewUser(t, r, "alice"), chattest.NewUser(t, r, "bob")
	chattest.Converse(t, alice, bob)
	if _, err := bob.ResetIdentity(t.Context()); err != nil {
		t.Fatal(err)
	}
	o := startOwner(t, r, alice)
	cl := dial(t, o.sock)
	ctx := t.Context()
	name := daemon.NameParams{Name: "bob"}
	var added daemon.AddContactResult
	chattest.Must(t, cl.Call(ctx, "addContact", name, &added))
	if !added.Contact.KeyChanged {
		t.Fatalf("addContact after bob's reset: %+v, want his key changed", added.Contact)
	}
	chattest.Must(t, cl.Call(ctx, "resetSession", name, nil))
	chattest.Must(t, cl.Call(ctx, "rejectKey", name, nil))

	src := filepath.Join(t.TempDir(), "notes.txt")
	chattest.Must(t, os.WriteFile(src, []byte("notes\n"), 0o600))
	for _, call := range []struct {
		method string
		params any
	}{
		{"send", daemon.SendParams{To: "bob", Text: "to the key I trust"}},
		{"sendFile", daemon.SendFileParams{To: "bob", Path: src}},
	} {
		err := cl.Call(ctx, call.method, call.params, nil)
		var re *daemon.Error
		if !errors.As(err, &re) || re.Code != daemon.CodeOnlyRejectedKey || re.Data == nil ||
			re.Data.Name != "only_rejected_key" || re.Data.Contact != "bob" {
			t.Fatalf("%s with only the rejected key on the relay: %v (%+v), want only_rejected_key naming bob", call.method, err, re)
		}
		if !strings.Contains(re.Message, "nothing can be sent to bob") || !strings.Contains(re.Message, "call fingerprint") ||
			!strings.Contains(re.Message, "then acceptKey") {
			t.Fatalf("%s: message %q does not say what to do", call.method, re.Message)
		}
		var rk *chat.RejectedKeyOnlyError
		if ce := daemon.ChatError(err); !errors.As(ce, &rk) || rk.Contact != "bob" || ce.Error() != rk.Error() {
			t.Fatalf("%s: ChatError gives %v, want chat's RejectedKeyOnlyError for bob with its own words", call.method, ce)
		}
	}

	var fp daemon.FingerprintResult
	chattest.Must(t, cl.Call(ctx, "fingerprint", name, &fp))
	chattest.Must(t, cl.Call(ctx, "acceptKey", name, nil))
	var sr daemon.SendResult
	chattest.Must(t, cl.Call(ctx, "send", daemon.SendParams{To: "bob", Text: "to your new key", WaitMs: 30000}, &sr))
	chattest.WaitReceived(t, bob, "alice", "to your new key")
	for _, m := range chattest.FullHistory(t, bob, "alice") {
		if m.Text == "to the key I trust" || m.Attachment != nil {
			t.Fatalf("bob got what was refused: %+v", m)
		}
	}
}
