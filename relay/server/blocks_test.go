package server_test

import (
	"strconv"
	"testing"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// TestBlocking: after bob blocks mallory, the relay refuses mallory's sends to bob and
// her bundle fetches of bob with "blocked", other senders and other recipients are
// untouched, the block survives a relay restart, and unblock lifts it.
func TestBlocking(t *testing.T) { eachStore(t, testBlocking) }

func testBlocking(t *testing.T, bk store) {
	r := bk.Start(t)
	ctx := testCtx(t)
	bob := newUser(t, r, "bob")
	mallory := newUser(t, r, "mallory")
	alice := newUser(t, r, "alice")
	keys := append(makePreKeys(t, bob, ratchet.SignedPreKey, 1, 1), makePreKeys(t, bob, ratchet.KEMLastResort, 1, 1)...)
	if err := bob.c.UploadPreKeys(ctx, keys); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, bob.c)

	if err := bob.c.Block(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	if err := bob.c.Block(ctx, "mallory"); err != nil {
		t.Fatalf("blocking twice: %v", err)
	}
	check := func(stage string, blocked bool) {
		t.Helper()
		_, err := mallory.c.Send(ctx, "bob", []byte("hi"), "m-"+stage)
		_, ferr := mallory.c.FetchBundle(ctx, "bob")
		if blocked {
			wantCode(t, err, relay.CodeBlocked)
			wantCode(t, ferr, relay.CodeBlocked)
		} else if err != nil || ferr != nil {
			t.Fatalf("%s: mallory → bob refused after unblock: %v, %v", stage, err, ferr)
		}
		if _, err := alice.c.Send(ctx, "bob", []byte("hi"), "a-"+stage); err != nil {
			t.Fatalf("%s: alice → bob: %v", stage, err)
		}
		if _, err := mallory.c.Send(ctx, "alice", []byte("hi"), "ma-"+stage); err != nil {
			t.Fatalf("%s: mallory → alice: %v", stage, err)
		}
		if _, err := bob.c.Send(ctx, "mallory", []byte("hi"), "b-"+stage); err != nil {
			t.Fatalf("%s: bob → mallory (the blocker may still write): %v", stage, err)
		}
	}
	check("blocked", true)

	r.Restart(t)
	bob.login(t, r)
	mallory.login(t, r)
	alice.login(t, r)
	check("restarted", true)

	if err := bob.c.Unblock(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	check("unblocked", false)

	rc := dialRaw(t, r)
	expectErr(t, rc.request(map[string]any{"type": "block", "id": 2, "name": "mallory"}), relay.CodeNotLoggedIn)
	rc.login(bob)
	expectErr(t, rc.request(map[string]any{"type": "block", "id": 3, "name": "Not A Name"}), relay.CodeInvalidName)
	expectErr(t, rc.request(map[string]any{"type": "block", "id": 4, "name": "eve", "to": "x"}), relay.CodeBadField)
	expectErr(t, rc.request(map[string]any{"type": "unblock", "id": 5}), relay.CodeBadField)
	if f := rc.request(map[string]any{"type": "unblock", "id": 6, "name": "eve"}); f.Type != relay.TypeOK || f.Name != "eve" {
		t.Fatalf("unblock a name not blocked: %+v", f)
	}
}

// TestTooManyBlocks: a name blocks at most 1000 names; one more is too_many_blocks with
// limit max_blocks, counted in pfschat_relay_limited_total like every named limit
// (PROTOCOL.md "Blocking", "Limits"), and changes nothing.
func TestTooManyBlocks(t *testing.T) { eachStore(t, testTooManyBlocks) }

func testTooManyBlocks(t *testing.T, bk store) {
	r := bk.StartWith(t, relaytest.Options{Synchronous: "NORMAL",
		Limits: server.Limits{FramesPerSecond: -1, AccountWritesPerHour: 2 * relay.MaxBlocks, AccountWritesBurst: 2 * relay.MaxBlocks}})
	_, rc := registerLoggedIn(t, r, "bob")
	for i := range relay.MaxBlocks {
		rc.sendJSON(map[string]any{"type": "block", "id": 2 + i, "name": "n" + strconv.Itoa(i)})
	}
	for i := range relay.MaxBlocks {
		if f := rc.answer(uint64(2 + i)); f.Type != relay.TypeOK {
			t.Fatalf("block %d: %+v", i, f)
		}
	}
	f := rc.request(map[string]any{"type": "block", "id": 1, "name": "one-more"})
	expectErr(t, f, relay.CodeTooManyBlocks)
	if f.Limit != "max_blocks" {
		t.Fatalf("too_many_blocks names the limit %q, want max_blocks", f.Limit)
	}
	wantLimited(t, r, "max_blocks", 1)
	if f := rc.request(map[string]any{"type": "block", "id": 1, "name": "n0"}); f.Type != relay.TypeOK {
		t.Fatalf("blocking a name already blocked at the limit: %+v", f)
	}
}
