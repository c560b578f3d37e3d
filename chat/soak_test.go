package chat_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
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
	ctx := t.Context()
	names := []string{"alice", "bob", "carol"}[:nUsers]
	users := make([]*chattest.User, nUsers)
	for i, name := range names {
		users[i] = chattest.NewUser(t, r, name, func(p *chat.Profile) { p.Prefs.AllowOffline = true })
	}
	// Sessions first: a new session needs the relay, later messages do not.
	for _, u := range users {
		for _, peer := range names {
			if peer == u.Name {
				continue
			}
			ct, err := u.AddContact(ctx, peer)
			if err != nil {
				t.Fatal(err)
			}
			card, err := chat.StoredCard(u.Controller, ctx, ct.CardID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.StartNewSession(ctx, card); err != nil {
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
		if _, err := users[p.from].Send(ctx, names[p.to], text); err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
		next[p]++
		sent++
		switch action[sent] {
		case 1:
			r.Restart(t)
			restarts.relay++
		case 2:
			users[rng.IntN(nUsers)].Reopen()
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
			case ev := <-u.Events():
				if ev.Kind == chat.ConnectionChanged && testing.Verbose() {
					t.Logf("%v %s: %s %v %v", time.Since(start).Round(time.Millisecond), u.Name, ev.State.Status, ev.State.RetryIn, ev.State.Err)
				}
			case <-time.After(60 * time.Second):
				for _, v := range users {
					out, _ := chat.StoreOf(v.Controller).Outbox(ctx)
					depth, _ := r.Store.QueueDepth(ctx)
					t.Logf("%s: online=%v outbox=%d relay queue depth=%d", v.Name, v.Online(), len(out), depth)
				}
				t.Fatalf("%s: not complete after a minute of silence: %s", u.Name, why)
			}
		}
	}
}

// soakComplete checks u's store: n messages from each peer, exactly once and in order,
// nothing undecryptable, and all of u's n messages to each peer delivered.
func soakComplete(t *testing.T, u *chattest.User, names []string, n int) (bool, string) {
	for _, peer := range names {
		if peer == u.Name {
			continue
		}
		var in []chat.Message
		delivered := 0
		for _, m := range chattest.FullHistory(t, u, peer) { // oldest first
			if m.State == chat.UndecryptableState {
				t.Fatalf("%s: undecryptable message from %s: %s", u.Name, peer, m.Reason)
			}
			if m.Outgoing {
				if m.State >= chat.Delivered && m.State != chat.Failed {
					delivered++
				}
				if m.State == chat.Failed {
					t.Fatalf("%s: message to %s failed: %s", u.Name, peer, m.Reason)
				}
				continue
			}
			in = append(in, m)
		}
		prefix := peer + ">" + u.Name + " #"
		for i, m := range in {
			k, err := strconv.Atoi(strings.TrimPrefix(m.Text, prefix))
			if err != nil || !strings.HasPrefix(m.Text, prefix) {
				t.Fatalf("%s: unexpected message %q", u.Name, m.Text)
			}
			if k != i {
				t.Fatalf("%s: message %d from %s is #%d (duplicate or out of order)", u.Name, i, peer, k)
			}
		}
		if len(in) < n {
			return false, fmt.Sprintf("%d/%d messages from %s", len(in), n, peer)
		}
		if len(in) > n {
			t.Fatalf("%s: %d messages from %s, sent %d", u.Name, len(in), peer, n)
		}
		if delivered < n {
			return false, fmt.Sprintf("%d/%d messages to %s delivered", delivered, n, peer)
		}
	}
	return true, ""
}
