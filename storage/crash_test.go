package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "PFSCHAT_STORAGE_CRASH_CHILD" // "dir run passphrase"

func TestMain(m *testing.M) {
	if v := os.Getenv(crashChildEnv); v != "" {
		f := strings.Fields(v)
		if err := crashChild(f[0], f[1], f[2]); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild writes forever, to a client store and a relay store, and prints one line
// per committed write: "c N" after CommitReceive returned, "r N" after Enqueue did. The
// parent kills it with SIGKILL at a random moment.
func crashChild(dir, run, pass string) error {
	ctx := context.Background()
	c, err := OpenClient(ctx, filepath.Join(dir, "client.db"), []byte(pass))
	if err != nil {
		return err
	}
	r, err := OpenRelay(ctx, filepath.Join(dir, "relay.db"), RelayOptions{})
	if err != nil {
		return err
	}
	var lastQueued int64
	// The session's generation as the last run left it: every commit is a
	// compare-and-swap on it.
	var gen uint64
	if ss, err := c.Sessions(ctx, "card-bob"); err != nil {
		return err
	} else if len(ss) > 0 {
		gen = ss[0].Generation
	}
	for i := 0; ; i++ {
		id := run + "-" + strconv.Itoa(i)
		_, err := c.CommitReceive(ctx, ReceiveTx{
			RelayID: id,
			Session: &Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte("state " + id), Generation: gen},
			Message: &Message{Contact: "bob", Body: []byte("body " + id), ReceivedAt: time.Now()},
		})
		if err != nil {
			return err
		}
		gen++
		fmt.Fprintf(os.Stdout, "c %s\n", id)
		if _, err := c.CommitSend(ctx, SendTx{
			Session: Session{ID: "s", PeerCardID: "card-bob", Active: true, State: []byte("state " + id), Generation: gen},
			Message: &Message{Contact: "bob", Body: []byte("sent " + id), SentAt: time.Now()},
			Outbox:  OutboxItem{ClientID: "o-" + id, To: "bob", Payload: []byte("wire " + id)},
		}); err != nil {
			return err
		}
		gen++
		fmt.Fprintf(os.Stdout, "s %s\n", id)
		if i%2 == 1 { // the relay accepted the previous one
			if err := c.RemoveOutbox(ctx, "o-"+run+"-"+strconv.Itoa(i-1)); err != nil {
				return err
			}
		}
		res, err := r.Enqueue(ctx, []QueuedMessage{{To: "bob", From: "alice", ClientID: id, Body: []byte("ct " + id)}})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "r %s\n", id)
		if lastQueued != 0 && i%2 == 0 { // exercise deletes too
			if err := r.Ack(ctx, "bob", []int64{lastQueued}); err != nil {
				return err
			}
		}
		lastQueued = res[0].ID
		if i%7 == 6 { // the passphrase changes now and then: "p NEW" once committed
			pass = otherPass(pass)
			if err := c.ChangePassphraseWith(ctx, []byte(pass), testKDF); err != nil {
				return err
			}
			fmt.Fprintf(os.Stdout, "p %s\n", pass)
		}
	}
}

func otherPass(p string) string {
	if p == "pw" {
		return "pw2"
	}
	return "pw"
}

// TestCrashSafety kills a writing child with SIGKILL at random moments, reopens both
// stores, checks their integrity and that every write the child reported is there.
func TestCrashSafety(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	c, err := CreateClientWith(ctx, filepath.Join(dir, "client.db"), []byte("pw"), ClientOptions{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	addPeer(t, c, "bob")
	c.Close()

	kills, maxLines := 20, 60
	if testing.Short() {
		maxLines = 16
	}
	reportedC, reportedR, reportedS := map[string]bool{}, map[string]bool{}, map[string]bool{}
	pass := "pw"
	for k := 0; k < kills; k++ {
		run := "run" + strconv.Itoa(k)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir+" "+run+" "+pass)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killAt := 1 + rand.IntN(maxLines)
		lines, killed := 0, false
		for sc.Scan() {
			kind, id, _ := strings.Cut(sc.Text(), " ")
			switch kind {
			case "p":
				pass = id
			case "c":
				reportedC[id] = true
			case "s":
				reportedS[id] = true
			default:
				reportedR[id] = true
			}
			lines++
			if lines == killAt && !killed {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !killed || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: child not killed as planned (killed=%v, err=%v, stderr=%s)", k, killed, err, stderr.String())
		}

		// The last reported passphrase opens it, or — if the child died after committing a
		// change but before reporting it — the other one. Never neither.
		c, err := OpenClient(ctx, filepath.Join(dir, "client.db"), []byte(pass))
		if errors.Is(err, ErrWrongPassphrase) {
			pass = otherPass(pass)
			c, err = OpenClient(ctx, filepath.Join(dir, "client.db"), []byte(pass))
		}
		if err != nil {
			t.Fatalf("kill %d: reopen client: %v", k, err)
		}
		if err := c.IntegrityCheck(ctx); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		bodies := map[string]bool{}
		cur := Cursor{}
		for {
			page, next, err := c.Messages(ctx, "bob", cur, 500)
			if err != nil {
				t.Fatalf("kill %d: read messages: %v", k, err)
			}
			for _, m := range page {
				if m.Direction == Incoming {
					bodies[strings.TrimPrefix(string(m.Body), "body ")] = true
				}
			}
			if next == (Cursor{}) {
				break
			}
			cur = next
		}
		var seen int
		c.db.r.QueryRow("SELECT count(*) FROM seen_relay_ids").Scan(&seen)
		if seen != len(bodies) {
			t.Fatalf("kill %d: %d relay ids but %d messages: a receive was torn", k, seen, len(bodies))
		}
		for id := range reportedC {
			if !bodies[id] {
				t.Fatalf("kill %d: reported receive %s lost", k, id)
			}
		}
		outbox, err := c.Outbox(ctx)
		if err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		inOutbox := map[string]bool{}
		for _, it := range outbox {
			inOutbox[it.ClientID] = true
			if string(it.Payload) != "wire "+strings.TrimPrefix(it.ClientID, "o-") {
				t.Fatalf("kill %d: outbox %s holds %q", k, it.ClientID, it.Payload)
			}
		}
		for id := range reportedS {
			m, err := c.MessageByClientID(ctx, "o-"+id)
			if err != nil {
				t.Fatalf("kill %d: reported send %s lost: %v", k, id, err)
			}
			// Pending exactly while in the outbox: RemoveOutbox and the state change are one.
			if (m.State == Pending) != inOutbox["o-"+id] {
				t.Fatalf("kill %d: send %s state %v, in outbox %v", k, id, m.State, inOutbox["o-"+id])
			}
		}
		ss, err := c.Sessions(ctx, "card-bob")
		if err != nil || len(ss) != 1 || !strings.HasPrefix(string(ss[0].State), "state ") {
			t.Fatalf("kill %d: session %v: %v", k, ss, err)
		}
		c.Close()

		r, err := OpenRelay(ctx, filepath.Join(dir, "relay.db"), RelayOptions{})
		if err != nil {
			t.Fatalf("kill %d: reopen relay: %v", k, err)
		}
		if err := r.IntegrityCheck(ctx); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		var batch []QueuedMessage
		for id := range reportedR {
			batch = append(batch, QueuedMessage{To: "bob", From: "alice", ClientID: id, Body: []byte("again")})
		}
		// Re-enqueue everything reported: each must be recognised as accepted before
		// (a real duplicate changes nothing; a lost one fails the test anyway).
		res, err := r.Enqueue(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range res {
			if !x.Duplicate {
				t.Fatalf("kill %d: reported enqueue %s lost", k, batch[i].ClientID)
			}
		}
		var queued int
		usage, _ := r.QueueDepth(t.Context())
		r.db.r.QueryRow("SELECT count(*) FROM queue").Scan(&queued)
		if usage != queued {
			t.Fatalf("kill %d: usage counter %d, queue %d", k, usage, queued)
		}
		r.Close()
	}
	t.Logf("%d kills; %d receives, %d sends and %d enqueues reported and found", kills, len(reportedC), len(reportedS), len(reportedR))
}
