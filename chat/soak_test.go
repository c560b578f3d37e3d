package chat

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"pfschat/relay/relaytest"
)

// TestSoakWithRestarts: every user writes n messages to every other user, interleaved,
// while the relay and the clients are restarted at random points (clients reopen from
// their stores). Every message must arrive exactly once, in order per sender, and every
// one must come back as delivered.
func TestSoakWithRestarts(t *testing.T) {
	for _, users := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d users", users), func(t *testing.T) {
			// 1,000 messages each way per user: with three users each writes 500 to
			// each of the two others (and so receives 1,000).
			n := 1000 / (users - 1)
			if testing.Short() {
				n = 60
			}
			soak(t, users, n)
		})
	}
}

func soak(t *testing.T, nUsers, n int) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PFSCHAT_SOAK_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	r := relaytest.Start(t)
	ctx := ctxT(t)
	names := []string{"alice", "bob", "carol"}[:nUsers]
	users := make([]*user, nUsers)
	for i, name := range names {
		users[i] = newUser(t, r, name, func(p *Profile) { p.Prefs.AllowOffline = true })
	}
	// Sessions first: a new session needs the relay, later messages do not.
	for _, u := range users {
		for _, peer := range names {
			if peer == u.name {
				continue
			}
			ct, err := u.c.AddContact(ctx, peer)
			if err != nil {
				t.Fatal(err)
			}
			card, err := u.c.storedCard(ctx, ct.CardID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.c.StartNewSession(ctx, card); err != nil {
				t.Fatal(err)
			}
		}
	}
	type pair struct{ from, to int }
	next := make(map[pair]int)
	var pairs []pair
	for i := range users {
		for j := range users {
			if i != j {
				pairs = append(pairs, pair{i, j})
			}
		}
	}
	restarts := struct{ relay, client int }{}
	total := n * len(pairs)
	// Restart points, spread at random: the relay a few times, the clients more often.
	action := make(map[int]int) // sent index -> 1 relay, 2 client
	for range max(3, total/400) {
		action[1+rng.IntN(total-1)] = 1
	}
	for range max(5, total/150) {
		action[1+rng.IntN(total-1)] = 2
	}
	for sent := 0; sent < total; {
		p := pairs[rng.IntN(len(pairs))]
		if next[p] == n {
			continue
		}
		text := fmt.Sprintf("%s>%s #%d", names[p.from], names[p.to], next[p])
		if _, err := users[p.from].c.Send(ctx, names[p.to], text); err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
		next[p]++
		sent++
		switch action[sent] {
		case 1:
			r.Restart(t)
			restarts.relay++
		case 2:
			users[rng.IntN(nUsers)].reopen()
			restarts.client++
		}
	}
	t.Logf("%d messages, %d relay restarts, %d client restarts", total, restarts.relay, restarts.client)
	start := time.Now()
	defer func() { t.Logf("all delivered %v after the last send", time.Since(start).Round(time.Millisecond)) }()

	// Wait until every user holds every message, and every sender sees every message
	// delivered, checking the stores whenever something happens.
	for _, u := range users {
		for {
			done, why := soakComplete(t, u, names, n)
			if done {
				break
			}
			select {
			case ev := <-u.c.Events():
				if ev.Kind == ConnectionChanged && testing.Verbose() {
					t.Logf("%v %s: %s %v %v", time.Since(start).Round(time.Millisecond), u.name, ev.State.Status, ev.State.RetryIn, ev.State.Err)
				}
			case <-time.After(60 * time.Second):
				for _, v := range users {
					out, _ := v.c.store.Outbox(ctx)
					depth, _ := r.Store.QueueDepth(ctx)
					t.Logf("%s: online=%v outbox=%d relay queue depth=%d", v.name, v.c.Online(), len(out), depth)
				}
				t.Fatalf("%s: not complete after a minute of silence: %s", u.name, why)
			}
		}
	}
}

// soakComplete checks u's store: n messages from each peer, exactly once and in order,
// nothing undecryptable, and all of u's n messages to each peer delivered.
func soakComplete(t *testing.T, u *user, names []string, n int) (bool, string) {
	ctx := ctxT(t)
	for _, peer := range names {
		if peer == u.name {
			continue
		}
		var all []Message
		before := int64(0)
		for {
			page, err := u.c.History(ctx, peer, before, 500)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if len(page) < 500 {
				break
			}
			before = page[len(page)-1].ID
		}
		var in []Message
		delivered := 0
		for i := len(all) - 1; i >= 0; i-- { // oldest first
			m := all[i]
			if m.State == UndecryptableState {
				t.Fatalf("%s: undecryptable message from %s: %s", u.name, peer, m.Reason)
			}
			if m.Outgoing {
				if m.State >= Delivered && m.State != Failed {
					delivered++
				}
				if m.State == Failed {
					t.Fatalf("%s: message to %s failed: %s", u.name, peer, m.Reason)
				}
				continue
			}
			in = append(in, m)
		}
		prefix := peer + ">" + u.name + " #"
		for i, m := range in {
			k, err := strconv.Atoi(strings.TrimPrefix(m.Text, prefix))
			if err != nil || !strings.HasPrefix(m.Text, prefix) {
				t.Fatalf("%s: unexpected message %q", u.name, m.Text)
			}
			if k != i {
				t.Fatalf("%s: message %d from %s is #%d (duplicate or out of order)", u.name, i, peer, k)
			}
		}
		if len(in) < n {
			return false, fmt.Sprintf("%d/%d messages from %s", len(in), n, peer)
		}
		if len(in) > n {
			t.Fatalf("%s: %d messages from %s, sent %d", u.name, len(in), peer, n)
		}
		if delivered < n {
			return false, fmt.Sprintf("%d/%d messages to %s delivered", delivered, n, peer)
		}
	}
	return true, ""
}
