package chat

import (
	"testing"

	"pfschat/chat/payload"
	"pfschat/relay/relaytest"
)

// A payload of a type this version does not know (a newer client's), or one it does not
// act on yet, is ignored: not shown, not recorded as undecryptable, and the session
// goes on (chat/PAYLOAD.md §4).
func TestUnknownPayloadTypeIsIgnored(t *testing.T) {
	r := relaytest.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := t.Context()
	if _, err := alice.c.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, "bob", "before"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "before")

	unknown := []byte{2, 99, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 'n', 'e', 'w'}
	unknown = append(unknown, make([]byte, payload.MinBucket-len(unknown))...)
	retry, err := payload.Encode(&payload.Payload{Type: payload.RetryRequest, Retry: payload.Retry{Reason: payload.RetryUndecryptable, RelayMsgID: 7}})
	must(t, err)
	for _, plain := range [][]byte{unknown, retry} {
		must(t, alice.c.onSession(ctx, "bob", false, func(s *Session) error {
			_, err := alice.c.commitEncrypted(ctx, s, "bob", plain, newClientID(), nil)
			return err
		}))
	}
	if _, err := alice.c.Send(ctx, "bob", "after"); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, bob.c, "alice", "after") // delivered in order: the two came first
	h, err := bob.c.History(ctx, "alice", 0, 10)
	must(t, err)
	if len(h) != 2 || h[0].Text != "after" || h[1].Text != "before" {
		t.Fatalf("history %+v, want only the two texts", h)
	}
	if h[0].Seq != h[1].Seq+1 {
		t.Fatalf("seqs %d, %d: the ignored payloads must not take sequence numbers", h[1].Seq, h[0].Seq)
	}
}
