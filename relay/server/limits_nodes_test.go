package server_test

// The limits and one-time rules that protect a victim or a shared resource, over two
// relay nodes on one JetStream: an attacker splitting its requests across the nodes
// gets no more than one relay would give it. (Prekey uploads per card:
// prekeys_nodes_test.go; registrations per address and bundles per target:
// relay/cluster's nodes_cache_test.go; one-time prekeys and names at the directory:
// relay/cluster's directory_test.go.)

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/cluster"
	"pfschat/relay/cluster/natstest"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// twoNodes starts two relay nodes with opts on one fresh JetStream server, and
// returns them and their (shared) directory.
func twoNodes(t *testing.T, opts relaytest.Options) ([2]*relaytest.Relay, *cluster.Directory) {
	t.Helper()
	ns := natstest.Single(t)
	a, dir := startClusterNode(t, ns.URL(), opts)
	b, _ := startClusterNode(t, ns.URL(), opts)
	return [2]*relaytest.Relay{a, b}, dir
}

// loginOn logs u in at r on a client of its own (closed at cleanup).
func loginOn(t *testing.T, u *user, r *relaytest.Relay) *client.Client {
	t.Helper()
	c := client.New(client.Config{URL: r.URL, Identity: u.key, Card: u.card, PinnedRelayKey: r.Server.RelayKey(), RootCAs: r.RootCAs()})
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("login %s on %s: %v", u.name, r.URL, err)
	}
	return c
}

// wantLimit fails unless err is an error frame with code and limit.
func wantLimit(t *testing.T, err error, code, limit string) {
	t.Helper()
	wantCode(t, err, code)
	if pe := protoErr(err); pe.Limit != limit {
		t.Fatalf("%v: limit %q, want %q", err, pe.Limit, limit)
	}
}

// TestRecoveryLimitsAcrossNodes: recovery_per_name and recovery_per_address count in
// the shared store: three wrong codes for alice through A, B, A use her hour, and the
// right code is then refused on either node; the address's five attempts are used up
// too, so another name's recovery is refused on either node.
func TestRecoveryLimitsAcrossNodes(t *testing.T) {
	n, _ := twoNodes(t, relaytest.Options{Limits: server.Limits{RecoveryPerNamePerHour: 3, RecoveryPerAddressPerHour: 5}})
	_, code := registerWithCode(t, n[0], "alice")
	ctx := testCtx(t)
	anon := [2]*client.Client{anonClient(t, n[0]), anonClient(t, n[1])}
	_, card := newIdentity(t, "alice")
	for i := range 3 {
		_, err := anon[i%2].Recover(ctx, card, newCode(t).Proof("alice"), newCode(t).Proof("alice"))
		wantCode(t, err, relay.CodeRecoveryFailed)
	}
	for node := range 2 { // attempts 4 and 5 of the address
		_, err := anon[node].Recover(ctx, card, code.Proof("alice"), newCode(t).Proof("alice"))
		wantLimit(t, err, relay.CodeRateLimited, server.LimitRecoveryPerName)
	}
	_, bobCard := newIdentity(t, "bob")
	for node := range 2 {
		_, err := anon[node].Recover(ctx, bobCard, newCode(t).Proof("bob"), newCode(t).Proof("bob"))
		wantLimit(t, err, relay.CodeRateLimited, server.LimitRecoveryPerAddress)
	}
}

// TestRecoveryCodeWorksOnceAcrossNodes: eight recoveries of alice with her one code,
// each with a card of its own, at once through both nodes: exactly one wins, the
// others get recovery_failed (the winner's new code replaced the one they prove), and
// the winner's card is alice's on both nodes.
func TestRecoveryCodeWorksOnceAcrossNodes(t *testing.T) {
	n, dir := twoNodes(t, relaytest.Options{Limits: server.Limits{RecoveryPerNamePerHour: 100, RecoveryPerAddressPerHour: 100}})
	_, code := registerWithCode(t, n[0], "alice")
	ctx := testCtx(t)
	const tries = 8
	var anon [tries]*client.Client
	var cards [tries]*ratchet.Card
	for i := range tries {
		anon[i] = anonClient(t, n[i%2])
		_, cards[i] = newIdentity(t, "alice")
	}
	errs := atOnce(tries, func(i int) error {
		_, err := anon[i].Recover(ctx, cards[i], code.Proof("alice"), newCode(t).Proof("alice"))
		return err
	})
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("recoveries %d and %d both succeeded with one code", winner, i)
			}
			winner = i
			continue
		}
		wantCode(t, err, relay.CodeRecoveryFailed)
	}
	if winner < 0 {
		t.Fatal("no recovery succeeded")
	}
	acc, err := dir.AccountByName(ctx, "alice")
	if err != nil || acc.CardID != cards[winner].ID() {
		t.Fatalf("alice's card after the race: %s, %v; want the winner's %s", acc.CardID, err, cards[winner].ID())
	}
}

// TestLowPreKeysNoticeAcrossNodes: low_prekeys_notice counts in the shared store:
// four fetches of the victim's bundle, alternating between the nodes, send the
// victim one notice; the other three are refused by the window, whichever node
// served them.
func TestLowPreKeysNoticeAcrossNodes(t *testing.T) {
	n, _ := twoNodes(t, relaytest.Options{})
	victim := newUser(t, n[0], "victim")
	publishBundle(t, victim, 5) // below the threshold from the start
	mallory := register(t, n[0], "mallory")
	fetchers := [2]*client.Client{loginOn(t, mallory, n[0]), loginOn(t, mallory, n[1])}
	ctx := testCtx(t)
	for i := range 4 {
		if _, err := fetchers[i%2].FetchBundle(ctx, "victim"); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	waitPush(t, victim, func(p pushView) bool { return p.LowPreKeys })
	got := [2]int{limited(t, n[0], server.LimitLowPreKeysNotice), limited(t, n[1], server.LimitLowPreKeysNotice)}
	if got[0]+got[1] != 3 {
		t.Fatalf("low_prekeys_notice refused %d times on A and %d on B, want 3 in all (one notice for the window, not one per node)", got[0], got[1])
	}
}

// TestAccountWritesLimitAcrossNodes: account_writes_per_name counts in the shared
// store: an account logged in on both nodes gets one burst of blocks, not one per
// node.
func TestAccountWritesLimitAcrossNodes(t *testing.T) {
	const burst = 4
	n, _ := twoNodes(t, relaytest.Options{Limits: server.Limits{AccountWritesPerHour: 60, AccountWritesBurst: burst}})
	mallory := register(t, n[0], "mallory")
	c := [2]*client.Client{loginOn(t, mallory, n[0]), loginOn(t, mallory, n[1])}
	ctx := testCtx(t)
	for i := range burst {
		if err := c[i%2].Block(ctx, "name"+strconv.Itoa(i)); err != nil {
			t.Fatalf("block %d of the burst, on node %d: %v", i+1, i%2, err)
		}
	}
	for node := range 2 {
		err := c[node].Block(ctx, "more"+strconv.Itoa(node))
		wantLimit(t, err, relay.CodeRateLimited, server.LimitAccountWritesPerName)
	}
}

// TestInviteUsesAcrossNodes: an invite of three uses, tried by eight registrations at
// once through both nodes: three register, five get invite_required.
func TestInviteUsesAcrossNodes(t *testing.T) {
	n, dir := twoNodes(t, relaytest.Options{Registration: server.RegistrationInvite})
	ctx := testCtx(t)
	code, err := server.CreateInvite(ctx, dir, 3, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const tries = 8
	var anon [tries]*client.Client
	var cards [tries]*ratchet.Card
	for i := range tries {
		anon[i] = client.New(client.Config{URL: n[i%2].URL, Invite: code})
		t.Cleanup(func() { anon[i].Close() })
		if err := anon[i].Connect(ctx); err != nil {
			t.Fatal(err)
		}
		_, cards[i] = newIdentity(t, fmt.Sprint("user", i))
	}
	errs := atOnce(tries, func(i int) error {
		_, err := anon[i].Register(ctx, cards[i])
		return err
	})
	registered := 0
	for _, err := range errs {
		if err == nil {
			registered++
			continue
		}
		wantCode(t, err, relay.CodeInviteRequired)
	}
	if registered != 3 {
		t.Fatalf("%d registrations with an invite of 3 uses", registered)
	}
}

// TestQueueCapsAcrossNodes: the queue caps count in the shared store. With 8 messages
// per recipient (1 per sender): mallory's second message to the offline bob is
// refused sender_quota on either node; seven more senders, alternating between the
// nodes, fill bob's queue, and the next sender is refused count on either node.
func TestQueueCapsAcrossNodes(t *testing.T) {
	n, _ := twoNodes(t, relaytest.Options{Limits: server.Limits{MaxQueueCount: 8}})
	register(t, n[0], "bob") // offline: the queue fills
	ctx := testCtx(t)
	mallory := register(t, n[0], "mallory")
	m := [2]*client.Client{loginOn(t, mallory, n[0]), loginOn(t, mallory, n[1])}
	if _, err := m[0].Send(ctx, "bob", []byte("spam"), "m0"); err != nil {
		t.Fatal(err)
	}
	for node := range 2 {
		_, err := m[1-node].Send(ctx, "bob", []byte("spam"), "m"+strconv.Itoa(1+node))
		wantLimit(t, err, relay.CodeQueueFull, server.LimitSenderQuota)
	}
	for i := range 7 {
		s := register(t, n[0], "s"+strconv.Itoa(i))
		if _, err := loginOn(t, s, n[i%2]).Send(ctx, "bob", []byte("hi"), "h"); err != nil {
			t.Fatalf("sender %d of the 8 bob's queue holds, on node %d: %v", i+2, i%2, err)
		}
	}
	late := register(t, n[0], "late")
	for node := range 2 {
		_, err := loginOn(t, late, n[node]).Send(ctx, "bob", []byte("hi"), "l"+strconv.Itoa(node))
		wantLimit(t, err, relay.CodeQueueFull, "count")
	}
}

// TestBundleLimitNoticeAcrossNodes: the limit_notice of fetch_bundle_per_target is
// sent once an hour in all, not once per node. With 2 bundles an hour, fetches 3 and
// 4 (through A, then B) carry no one-time key and the victim, on A, is told once. Then
// an hour and ten minutes later a fetch through A and one through B each send a
// low_prekeys notice: a notice goes from a node to the victim's connection in the
// order the node sent it, so once both have come, any second limit_notice would have
// come before them.
func TestBundleLimitNoticeAcrossNodes(t *testing.T) {
	clk := &frozenClock{t: time.Now()}
	n, _ := twoNodes(t, relaytest.Options{Clock: clk.now, Limits: server.Limits{FetchBundlePerTargetPerHour: 2, FetchBundlePerMinute: 1000, FetchBundleBurst: 1000}})
	owner := newUser(t, n[0], "victim")
	publishBundle(t, owner, 22)       // two above the low_prekeys threshold of 20
	victim := loginOn(t, owner, n[0]) // logged in with 22: no low_prekeys at login
	mallory := register(t, n[0], "mallory")
	fetchers := [2]*client.Client{loginOn(t, mallory, n[0]), loginOn(t, mallory, n[1])}
	ctx := testCtx(t)
	fetch := func(i int, wantKey bool) {
		t.Helper()
		b, err := fetchers[i%2].FetchBundle(ctx, "victim")
		if err != nil || (b.OneTimePreKey != nil) != wantKey {
			t.Fatalf("fetch %d, on node %d: %v, one-time key %v, want %v", i+1, i%2, err, err == nil && b.OneTimePreKey != nil, wantKey)
		}
	}
	for i := range 4 {
		fetch(i, i < 2)
	}
	clk.add(time.Hour)
	fetch(4, true) // 19 left: low_prekeys, from A
	clk.add(10 * time.Minute)
	fetch(5, true) // 18 left, the window over: low_prekeys, from B
	notices, low := 0, 0
	wctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for low < 2 {
		p, err := victim.Pushes().Wait(wctx)
		if err != nil {
			t.Fatalf("%d low_prekeys notices of 2: %v", low, err)
		}
		if p.LowPreKeys != nil {
			low++
		}
		if p.LimitNotice == server.LimitFetchBundlePerTarget {
			notices++
		}
	}
	if notices != 1 {
		t.Fatalf("the victim was told %d times of %s, want once (not once per node)", notices, server.LimitFetchBundlePerTarget)
	}
	if got := limited(t, n[0], server.LimitFetchBundlePerTarget) + limited(t, n[1], server.LimitFetchBundlePerTarget); got != 2 {
		t.Fatalf("%s counted %d times on the two nodes, want 2", server.LimitFetchBundlePerTarget, got)
	}
}

// atOnce runs f(0), …, f(n-1) on n goroutines released together, as requests that
// reach the nodes at the same moment, and returns their errors by index.
func atOnce(n int, f func(i int) error) []error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}
