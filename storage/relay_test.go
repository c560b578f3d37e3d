package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestRelayQueueBasics(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{MaxQueueCount: 3, MaxQueueBytes: 1000})
	res, err := r.Enqueue(ctx, []QueuedMessage{
		{To: "bob", From: "alice", ClientID: "a1", Body: []byte("x"), ExpiresAt: t0.Add(time.Hour)},
		{To: "bob", From: "alice", ClientID: "a1", Body: []byte("x"), ExpiresAt: t0.Add(time.Hour)},
		{To: "bob", From: "carol", ClientID: "a1", Body: []byte("y"), ExpiresAt: t0.Add(time.Hour)},
		{To: "bob", From: "carol", ClientID: "a2", Body: []byte("z")},
		{To: "bob", From: "carol", ClientID: "a3", Body: []byte("w")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Duplicate || !res[1].Duplicate || res[1].ID != res[0].ID || res[2].Duplicate {
		t.Fatalf("results %+v", res)
	}
	var qf *QueueFullError
	if !errors.As(res[4].Err, &qf) || qf.Limit != "count" || !errors.Is(res[4].Err, ErrQueueFull) {
		t.Fatalf("want count limit, got %+v", res[4])
	}
	p, err := r.Pending(ctx, "bob", 0, 10)
	if err != nil || len(p) != 3 || p[0].ID >= p[1].ID {
		t.Fatalf("pending %+v %v", p, err)
	}
	if err := r.Ack(ctx, "mallory", []int64{p[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := r.Ack(ctx, "bob", []int64{p[0].ID, p[1].ID}); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.QueueDepth(ctx); n != 1 {
		t.Fatalf("depth %d", n)
	}
	// A resend after ack is still a duplicate.
	res, err = r.Enqueue(ctx, []QueuedMessage{{To: "bob", From: "alice", ClientID: "a1", Body: []byte("x")}})
	if err != nil || !res[0].Duplicate {
		t.Fatalf("resend after ack: %+v %v", res, err)
	}
	if n, err := r.Expire(ctx, t0.Add(2*time.Hour)); err != nil || n != 0 {
		t.Fatalf("expire = %d %v", n, err)
	}
}

func TestRelayAccountsAndPreKeys(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{})
	if err := r.CreateAccount(ctx, Account{Name: "bob", CardID: "c1", Card: []byte("card1"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateAccount(ctx, Account{Name: "bob", CardID: "c9"}); !errors.Is(err, ErrExists) {
		t.Fatalf("name twice: %v", err)
	}
	if err := r.CreateAccount(ctx, Account{Name: "robert", CardID: "c1"}); !errors.Is(err, ErrExists) {
		t.Fatalf("card twice: %v", err)
	}
	r.CreateAccount(ctx, Account{Name: "carol", CardID: "c3", Card: []byte("card3")})
	if a, err := r.AccountByCardID(ctx, "c1"); err != nil || a.Name != "bob" || !a.CreatedAt.Equal(t0) {
		t.Fatalf("by card %+v %v", a, err)
	}
	if _, err := r.AccountByName(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}

	keys := []StoredPreKey{{Kind: 1, ID: 1, Data: []byte("spk1")}, {Kind: 3, ID: 1, Data: []byte("kem1")}}
	for i := 1; i <= 10; i++ {
		keys = append(keys, StoredPreKey{Kind: 2, ID: uint32(i), Data: []byte("opk")})
	}
	var full *TooManyPreKeysError
	if n, err := r.PutPreKeys(ctx, "c1", keys, 8); !errors.As(err, &full) || !errors.Is(err, ErrTooManyPreKeys) || n != 0 || *full != (TooManyPreKeysError{Kind: 2, Stored: 0, Adding: 10, Max: 8}) {
		t.Fatalf("10 one-time keys over a cap of 8: stored %d, %v", n, err)
	}
	if c, _ := r.CountPreKeys(ctx, "c1", 1); c != 0 {
		t.Fatalf("an upload refused whole stored its signed prekey")
	}
	n, err := r.PutPreKeys(ctx, "c1", keys[:10], 8)
	if err != nil || n != 10 {
		t.Fatalf("stored %d (want 2 + 8 one-time), %v", n, err)
	}
	if n, err := r.PutPreKeys(ctx, "c1", []StoredPreKey{{Kind: 1, ID: 2, Data: []byte("spk2")}, {Kind: 2, ID: 5}}, 8); !errors.Is(err, ErrTooManyPreKeys) || n != 0 {
		t.Fatalf("a stored id over the cap: stored %d, %v (it counts, as PROTOCOL.md says)", n, err)
	}
	if n, err := r.PutPreKeys(ctx, "c1", []StoredPreKey{{Kind: 1, ID: 2, Data: []byte("spk2")}}, 8); err != nil || n != 1 {
		t.Fatalf("stored %d: signed replaced, %v", n, err)
	}
	if k, err := r.LatestPreKey(ctx, "c1", 1); err != nil || k.ID != 2 || string(k.Data) != "spk2" {
		t.Fatalf("latest %+v %v", k, err)
	}
	if c, _ := r.CountPreKeys(ctx, "c1", 1); c != 1 {
		t.Fatalf("%d signed prekeys kept", c)
	}
	ids, _ := r.PreKeyIDs(ctx, "c1", 2)
	if fmt.Sprint(ids) != "[1 2 3 4 5 6 7 8]" {
		t.Fatalf("ids %v", ids)
	}
	if k, _ := r.TakePreKey(ctx, "c1", 2); k.ID != 1 {
		t.Fatalf("took %d, want lowest", k.ID)
	}
	if _, err := r.TakePreKey(ctx, "c1", 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("took the signed prekey: %v", err)
	}
	if _, err := r.TakePreKey(ctx, "c3", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("take from empty: %v", err)
	}

	if err := r.ReplaceCard(ctx, "bob", "", Account{CardID: "c3"}); !errors.Is(err, ErrExists) {
		t.Fatalf("replace with carol's card: %v", err)
	}
	if err := r.ReplaceCard(ctx, "nobody", "", Account{CardID: "c7"}); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	// From a card that is not the account's (a connection whose card was replaced
	// elsewhere): nothing changes.
	if err := r.ReplaceCard(ctx, "bob", "c9", Account{CardID: "c8"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replace from a card bob does not have: %v", err)
	}
	if err := r.ReplaceCard(ctx, "bob", "c1", Account{CardID: "c2", Card: []byte("card2")}); err != nil {
		t.Fatal(err)
	}
	a, _ := r.AccountByName(ctx, "bob")
	if a.CardID != "c2" || string(a.Card) != "card2" || !a.CreatedAt.Equal(t0) {
		t.Fatalf("after replace %+v", a)
	}
	if c, _ := r.CountPreKeys(ctx, "c1", 2); c != 0 {
		t.Fatal("old card's prekeys kept")
	}
	if _, err := r.AccountByCardID(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatal("old card still resolves")
	}
	if err := r.SetMeta(ctx, "relay-key", []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Meta(ctx, "relay-key"); len(v) != 2 {
		t.Fatal("meta")
	}
}

func TestRelayLimitsAndExpiry(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{MaxQueueBytes: 10})
	res, err := r.Enqueue(ctx, []QueuedMessage{
		{To: "bob", From: "a", ClientID: "1", Body: make([]byte, 6), ExpiresAt: t0},
		{To: "bob", From: "a", ClientID: "2", Body: make([]byte, 6)},
		{To: "bob", From: "a", ClientID: "3", Body: make([]byte, 4), ExpiresAt: t0.Add(time.Hour)},
		{To: "carol", From: "a", ClientID: "4", Body: make([]byte, 10)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var qf *QueueFullError
	if !errors.As(res[1].Err, &qf) || qf.Limit != "bytes" || qf.Current != 6 || res[1].ID != 0 {
		t.Fatalf("want bytes limit for #2: %+v", res[1])
	}
	if res[2].Err != nil || res[3].Err != nil {
		t.Fatalf("limits are per recipient: %+v", res)
	}
	// A refused message is not remembered as accepted: it can be sent again later.
	if n, err := r.Expire(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	if c, b, _ := r.QueueUsage(ctx, "bob"); c != 1 || b != 4 {
		t.Fatalf("usage %d/%d", c, b)
	}
	res, _ = r.Enqueue(ctx, []QueuedMessage{{To: "bob", From: "a", ClientID: "2", Body: make([]byte, 6)}})
	if res[0].Err != nil || res[0].Duplicate {
		t.Fatalf("resend of refused message: %+v", res[0])
	}
	// After expiry the dedup entry is gone too.
	res, _ = r.Enqueue(ctx, []QueuedMessage{{To: "dave", From: "a", ClientID: "1", Body: []byte("x")}})
	if res[0].Duplicate || res[0].Err != nil {
		t.Fatal("expired dedup entry still matched")
	}
	if _, err := r.Enqueue(ctx, []QueuedMessage{{To: "bob", From: "a"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no client id: %v", err)
	}
	if d, _ := r.QueueDepth(ctx); d != 4 {
		t.Fatalf("depth %d", d)
	}
}

func TestAckBatch(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{})
	var batch []QueuedMessage
	for i := 0; i < 300; i++ {
		batch = append(batch, QueuedMessage{To: []string{"bob", "carol"}[i%2], From: "a", ClientID: fmt.Sprint(i), Body: []byte("x")})
	}
	res, err := r.Enqueue(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	acks := map[string][]int64{}
	for i, x := range res {
		if i%3 != 0 { // leave every third
			acks[batch[i].To] = append(acks[batch[i].To], x.ID)
		}
	}
	// carol cannot ack bob's messages
	acks["carol"] = append(acks["carol"], res[0].ID)
	if err := r.AckBatch(ctx, acks); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"bob", "carol"} {
		p, _ := r.Pending(ctx, to, 0, 1000)
		if len(p) != 50 {
			t.Fatalf("%s has %d pending, want 50", to, len(p))
		}
	}
	if d, _ := r.QueueDepth(ctx); d != 100 {
		t.Fatalf("depth %d", d)
	}
}

// TestAckUnsyncedKeepsTheStoreMode: an ack commits with synchronous=NORMAL (its loss
// to a power cut is only a redelivery), and the writer is back in its store's mode
// afterwards — after a failed ack too — so no later send is committed weaker.
func TestAckUnsyncedKeepsTheStoreMode(t *testing.T) {
	for _, tc := range []struct {
		sync string
		want int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{{SyncFull, 2}, {SyncNormal, 1}} {
		t.Run(tc.sync, func(t *testing.T) {
			ctx := t.Context()
			r := newRelay(t, RelayOptions{Synchronous: tc.sync})
			mode := func(when string) {
				t.Helper()
				var got int
				if err := r.db.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Fatalf("%s: the writer's synchronous is %d, want %d", when, got, tc.want)
				}
			}
			res, err := r.Enqueue(ctx, []QueuedMessage{
				{To: "bob", From: "a", ClientID: "1", Body: []byte("x")},
				{To: "bob", From: "a", ClientID: "2", Body: []byte("y")}})
			if err != nil {
				t.Fatal(err)
			}
			r.db.hook = func(int) error { return errors.New("injected") }
			if err := r.Ack(ctx, "bob", []int64{res[0].ID}); err == nil {
				t.Fatal("an ack failing at its first statement returned no error")
			}
			r.db.hook = nil
			mode("after a failed ack")
			if p, _ := r.Pending(ctx, "bob", 0, 10); len(p) != 2 {
				t.Fatalf("the failed ack deleted something: %d pending, want 2", len(p))
			}
			if err := r.Ack(ctx, "bob", []int64{res[0].ID}); err != nil {
				t.Fatal(err)
			}
			mode("after an ack")
			if p, _ := r.Pending(ctx, "bob", 0, 10); len(p) != 1 || p[0].ID != res[1].ID {
				t.Fatalf("after the ack: %+v pending, want only id %d", p, res[1].ID)
			}
			if _, err := r.Enqueue(ctx, []QueuedMessage{{To: "bob", From: "a", ClientID: "3", Body: []byte("z")}}); err != nil {
				t.Fatal(err)
			}
			mode("after the next send")
		})
	}
}

// TestCommit: Commit queues a batch and deletes acks in one transaction, with the
// same rules as Enqueue and AckBatch (an ack deletes only the acker's own messages).
func TestCommit(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{})
	first, err := r.Enqueue(ctx, []QueuedMessage{
		{To: "bob", From: "a", ClientID: "1", Body: []byte("x")},
		{To: "carol", From: "a", ClientID: "2", Body: []byte("yy")},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Commit(ctx, []QueuedMessage{
		{To: "bob", From: "a", ClientID: "3", Body: []byte("z")},
		{To: "bob", From: "a", ClientID: "1", Body: []byte("x")}, // duplicate
	}, map[string][]int64{"bob": {first[0].ID, first[1].ID}}) // carol's id is not bob's
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Duplicate || res[0].ID <= first[1].ID || !res[1].Duplicate || res[1].ID != first[0].ID {
		t.Fatalf("results %+v", res)
	}
	if p, _ := r.Pending(ctx, "bob", 0, 10); len(p) != 1 || p[0].ID != res[0].ID {
		t.Fatalf("bob pending %+v", p)
	}
	if p, _ := r.Pending(ctx, "carol", 0, 10); len(p) != 1 {
		t.Fatalf("carol pending %+v", p)
	}
	if n, b, _ := r.QueueUsage(ctx, "bob"); n != 1 || b != 1 {
		t.Fatalf("bob usage %d/%d", n, b)
	}
	// Acks alone, and nothing at all.
	if _, err := r.Commit(ctx, nil, map[string][]int64{"bob": {res[0].ID}}); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Commit(ctx, nil, nil); err != nil || len(res) != 0 {
		t.Fatal(res, err)
	}
	if d, _ := r.QueueDepth(ctx); d != 1 {
		t.Fatalf("depth %d", d)
	}
	// An invalid message fails the whole commit: the ack is not applied either.
	if _, err := r.Commit(ctx, []QueuedMessage{{To: "bob"}}, map[string][]int64{"carol": {first[1].ID}}); err == nil {
		t.Fatal("want an error")
	}
	if d, _ := r.QueueDepth(ctx); d != 1 {
		t.Fatalf("depth %d after a failed commit", d)
	}
}

// TestQueueUsageExact: the queue usage (kept in memory by Enqueue, Ack, AckBatch and Expire, with no
// triggers) always equals what is really queued, through duplicates, refusals, acks
// of foreign ids and expiry.
func TestQueueUsageExact(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{MaxQueueCount: 40, MaxQueueBytes: 4000})
	check := func(when string) {
		t.Helper()
		for _, to := range []string{"bob", "carol", "dave"} {
			p, err := r.Pending(ctx, to, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var bytes int64
			for _, m := range p {
				bytes += int64(len(m.Body))
			}
			c, b, err := r.QueueUsage(ctx, to)
			if err != nil || c != len(p) || b != bytes {
				t.Fatalf("%s: %s usage %d/%d, really %d/%d (%v)", when, to, c, b, len(p), bytes, err)
			}
		}
	}
	var ids []int64
	refusedCopies := 0
	for round := 0; round < 5; round++ {
		var batch []QueuedMessage
		for i := 0; i < 30; i++ {
			to := []string{"bob", "carol", "dave"}[i%3]
			exp := t0.Add(time.Duration(1+i%4) * time.Hour)
			m := QueuedMessage{To: to, From: "a", ClientID: fmt.Sprint(round, "/", i), Body: make([]byte, 10+i*7), ExpiresAt: exp}
			batch = append(batch, m)
			if i%5 == 0 {
				batch = append(batch, m) // a copy in the same batch
			}
		}
		batch = append(batch, QueuedMessage{To: "bob", From: "a", ClientID: "0/1", Body: []byte("resent")})
		res, err := r.Enqueue(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range res {
			if x.Err == nil && !x.Duplicate {
				ids = append(ids, x.ID)
			}
			if i > 0 && batch[i].ClientID == batch[i-1].ClientID {
				prev := res[i-1]
				if prev.Err != nil && x.Err == nil || prev.Err == nil && (!x.Duplicate || x.ID != prev.ID) {
					t.Fatalf("copy %d: %+v after %+v", i, x, prev)
				}
				refusedCopies += boolInt(prev.Err != nil)
			}
		}
		check(fmt.Sprint("after enqueue round ", round))
		// carol acks some of everyone's ids: only hers go.
		if err := r.AckBatch(ctx, map[string][]int64{"carol": ids[:len(ids)/3], "bob": ids[len(ids)/3 : len(ids)/2]}); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprint("after acks round ", round))
	}
	if err := r.Ack(ctx, "dave", ids); err != nil {
		t.Fatal(err)
	}
	check("after dave's ack")
	if _, err := r.Expire(ctx, t0.Add(150*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("after expiry")
	if refusedCopies == 0 {
		t.Fatal("no copy of a refused message was tried")
	}
}

// TestExpireInChunks: more expired messages than one expiry transaction takes are all
// deleted, the unexpired ones kept, and the usage stays exact.
func TestExpireInChunks(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{})
	var batch []QueuedMessage
	for i := 0; i < 2500; i++ {
		exp := t0.Add(time.Minute)
		if i%5 == 0 {
			exp = t0.Add(48 * time.Hour)
		}
		batch = append(batch, QueuedMessage{To: []string{"bob", "carol"}[i%2], From: "a", ClientID: fmt.Sprint(i), Body: make([]byte, 3), ExpiresAt: exp})
	}
	if _, err := r.Enqueue(ctx, batch); err != nil {
		t.Fatal(err)
	}
	n, err := r.Expire(ctx, t0.Add(time.Hour))
	if err != nil || n != 2000 {
		t.Fatalf("expired %d (%v), want 2000", n, err)
	}
	for _, to := range []string{"bob", "carol"} {
		c, b, _ := r.QueueUsage(ctx, to)
		p, _ := r.Pending(ctx, to, 0, 1000)
		if c != 250 || b != 750 || len(p) != 250 {
			t.Fatalf("%s: usage %d/%d, %d pending; want 250 of 3 bytes", to, c, b, len(p))
		}
	}
}

// TestRelayCommitFailEveryStep: a group-commit round (new messages, an in-batch
// repeat, a resend of a stored message, one refused by the queue limit, and acks)
// fails at every statement and at the commit in turn, and each failure leaves the
// store exactly as it was; then it succeeds with the right answers.
func TestRelayCommitFailEveryStep(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{MaxQueueCount: 3})
	old, err := r.Enqueue(ctx, []QueuedMessage{
		{To: "bob", From: "a", ClientID: "1", Body: []byte("x")},
		{To: "carol", From: "a", ClientID: "2", Body: []byte("yy")},
		{To: "dave", From: "a", ClientID: "3", Body: []byte("z")},
		{To: "dave", From: "a", ClientID: "4", Body: []byte("z")},
		{To: "dave", From: "a", ClientID: "5", Body: []byte("z")},
	})
	if err != nil {
		t.Fatal(err)
	}
	round := []QueuedMessage{
		{To: "bob", From: "a", ClientID: "10", Body: []byte("new")},
		{To: "carol", From: "b", ClientID: "10", Body: []byte("new too")},
		{To: "bob", From: "a", ClientID: "10", Body: []byte("new")}, // repeat within the round
		{To: "bob", From: "a", ClientID: "1", Body: []byte("x")},    // resend of a stored one
		{To: "dave", From: "a", ClientID: "11", Body: []byte("w")},  // dave is full (3)
	}
	acks := map[string][]int64{"bob": {old[0].ID}, "carol": {old[1].ID, old[2].ID}} // old[2] is dave's
	var res []EnqueueResult
	steps := failEveryStep(t, r.db, func() error {
		var err error
		res, err = r.Commit(ctx, round, acks)
		return err
	})
	if steps < 5 {
		t.Fatalf("the round took %d steps; failure was injected at too few points", steps)
	}
	var full *QueueFullError
	switch {
	case res[0].Err != nil || res[0].Duplicate || res[0].ID <= old[4].ID:
		t.Fatalf("new message: %+v", res[0])
	case res[1].Err != nil || res[1].Duplicate || res[1].ID <= res[0].ID:
		t.Fatalf("second new message: %+v", res[1])
	case !res[2].Duplicate || res[2].ID != res[0].ID:
		t.Fatalf("repeat within the round: %+v", res[2])
	case !res[3].Duplicate || res[3].ID != old[0].ID:
		t.Fatalf("resend: %+v", res[3])
	case !errors.As(res[4].Err, &full) || full.Recipient != "dave":
		t.Fatalf("message over dave's limit: %+v", res[4])
	}
	for to, want := range map[string]int{"bob": 1, "carol": 1, "dave": 3} {
		p, err := r.Pending(ctx, to, 0, 10)
		if err != nil || len(p) != want {
			t.Fatalf("%s has %d pending (%v), want %d", to, len(p), err, want)
		}
		if n, _, _ := r.QueueUsage(ctx, to); n != want {
			t.Fatalf("%s usage %d, want %d", to, n, want)
		}
	}
	// The refused message was not remembered: once dave has room it goes through.
	if err := r.Ack(ctx, "dave", []int64{old[2].ID}); err != nil {
		t.Fatal(err)
	}
	again, err := r.Enqueue(ctx, round[4:])
	if err != nil || again[0].Err != nil || again[0].Duplicate {
		t.Fatalf("resend of the refused message: %+v %v", again, err)
	}
}

// TestQueueUsageAfterFailedTransactions: the in-memory usage changes only when a
// transaction commits. Commits, acks and account deletions failing at every statement
// leave it equal to what is queued, and the limits keep holding.
func TestQueueUsageAfterFailedTransactions(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{MaxQueueCount: 6})
	exact := func(when string) {
		t.Helper()
		for _, to := range []string{"bob", "carol"} {
			p, err := r.Pending(ctx, to, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var bytes int64
			for _, m := range p {
				bytes += int64(len(m.Body))
			}
			c, b, err := r.QueueUsage(ctx, to)
			if err != nil || c != len(p) || b != bytes {
				t.Fatalf("%s: %s usage %d/%d, really %d/%d (%v)", when, to, c, b, len(p), bytes, err)
			}
		}
		var all int
		if err := r.db.r.QueryRow("SELECT count(*) FROM queue").Scan(&all); err != nil {
			t.Fatal(err)
		}
		if d, err := r.QueueDepth(ctx); err != nil || d != all {
			t.Fatalf("%s: depth %d, really %d (%v)", when, d, all, err)
		}
	}
	failAt := func(n int) {
		r.db.hook = func(step int) error {
			if step == n {
				return errors.New("injected")
			}
			return nil
		}
	}
	seq := 0
	msg := func(to string) QueuedMessage {
		seq++
		return QueuedMessage{To: to, From: "a", ClientID: fmt.Sprint(seq), Body: make([]byte, seq)}
	}
	if _, err := r.Enqueue(ctx, []QueuedMessage{msg("bob"), msg("bob"), msg("carol")}); err != nil {
		t.Fatal(err)
	}
	exact("start")
	for step := 1; ; step++ {
		pend, _ := r.Pending(ctx, "bob", 0, 1)
		failAt(step)
		_, err := r.Commit(ctx, []QueuedMessage{msg("bob"), msg("carol")}, map[string][]int64{"bob": {pend[0].ID}})
		r.db.hook = nil
		exact(fmt.Sprint("commit failing at statement ", step))
		if err == nil {
			break
		}
		if step > 20 {
			t.Fatal("commit never got through")
		}
	}
	if err := r.CreateAccount(ctx, Account{Name: "carol", CardID: "cc", Card: []byte("card"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for step := 1; ; step++ {
		failAt(step)
		_, err := r.DeleteAccount(ctx, "carol", "cc")
		r.db.hook = nil
		exact(fmt.Sprint("account deletion failing at statement ", step))
		if err == nil {
			break
		}
		if step > 20 {
			t.Fatal("deletion never got through")
		}
	}
	// The limit still counts what is queued: bob has 2, so 4 more fit and the 5th not.
	var batch []QueuedMessage
	for range 5 {
		batch = append(batch, msg("bob"))
	}
	res, err := r.Enqueue(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range res {
		if (i < 4) != (x.Err == nil) {
			t.Fatalf("message %d of 5 for bob with 2 queued, limit 6: %+v", i, x)
		}
	}
	exact("at the limit")
}

// TestRelayMigration10: a version 9 store's queue moves to the table without
// AUTOINCREMENT unchanged, its usage is counted from it, and new ids start after the
// old sequence, even when the messages with the highest ids were acknowledged.
func TestRelayMigration10(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "r.db")
	old, _, err := openDB(ctx, path, kindUpTo(t, relayKind, 9, nil), "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, to := range []string{"bob", "bob", "carol", "bob", "carol"} {
		if _, err := old.w.ExecContext(ctx, `INSERT INTO queue (recipient, sender, sender_card_id, client_id, body, received_at, expires_at)
			VALUES (?, 'alice', 'ca', ?, ?, 1, 0)`, to, fmt.Sprint(i), make([]byte, 10+i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.w.ExecContext(ctx, "DELETE FROM queue WHERE id >= 4"); err != nil { // acked
		t.Fatal(err)
	}
	old.close()

	r, err := OpenRelay(ctx, path, RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Pending(ctx, "bob", 0, 10)
	if err != nil || len(p) != 2 || p[0].ID != 1 || p[1].ID != 2 || len(p[1].Body) != 11 || p[1].ClientID != "1" {
		t.Fatalf("bob's queue after the migration: %+v %v", p, err)
	}
	if c, b, err := r.QueueUsage(ctx, "carol"); err != nil || c != 1 || b != 12 {
		t.Fatalf("carol's usage %d/%d (%v), want 1/12", c, b, err)
	}
	res, err := r.Enqueue(ctx, []QueuedMessage{{To: "bob", From: "alice", ClientID: "new", Body: []byte("x")}})
	if err != nil || res[0].ID <= 5 {
		t.Fatalf("a new message got %+v (%v): ids up to 5 were handed out", res, err)
	}
	last := res[0].ID
	// Across a restart, after the newest message was acknowledged: still no reuse.
	if err := r.Ack(ctx, "bob", []int64{last}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = OpenRelay(ctx, path, RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err = r.Enqueue(ctx, []QueuedMessage{{To: "bob", From: "alice", ClientID: "newer", Body: []byte("y")}})
	if err != nil || res[0].ID <= last {
		t.Fatalf("after a restart a new message got %+v (%v), the last before was %d", res, err, last)
	}
}

// A registration drops what is queued under its name from before: a send the relay
// checked before the name's account was deleted and committed after the deletion
// lands under the name (Enqueue does not look at accounts), and the name's next owner
// must not be sent it. The queue's usage follows: the new owner's queue has its whole
// limit. Before, CreateAccount left the messages, and the new owner was sent them.
func TestRegistrationDropsWhatIsQueuedUnderTheName(t *testing.T) {
	ctx := t.Context()
	r := newRelay(t, RelayOptions{MaxQueueCount: 2, MaxQueueBytes: 1000})
	msg := func(id string) QueuedMessage {
		return QueuedMessage{To: "alice", From: "bob", ClientID: id, Body: []byte(id), ExpiresAt: t0.Add(time.Hour)}
	}
	if res, err := r.Enqueue(ctx, []QueuedMessage{msg("late1"), msg("late2")}); err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("the late sends: %+v, %v", res, err)
	}
	if err := r.CreateAccount(ctx, Account{Name: "alice", CardID: "new-card", Card: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Pending(ctx, "alice", 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("the new owner's queue holds %d messages from before its registration (%v)", len(got), err)
	}
	res, err := r.Enqueue(ctx, []QueuedMessage{msg("new1"), msg("new2"), msg("new3")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err != nil || !errors.Is(res[2].Err, ErrQueueFull) {
		t.Fatalf("the new owner's queue after the drop: %+v, want two taken and the third over the limit", res)
	}
	if got, err := r.Pending(ctx, "alice", 0, 10); err != nil || len(got) != 2 || string(got[0].Body) != "new1" {
		t.Fatalf("the new owner's queue: %d messages (%v)", len(got), err)
	}
}
