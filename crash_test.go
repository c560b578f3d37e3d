package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/relay/relaytest"
)

// TestRecvSurvivesSIGKILL is the chat-level crash soak: "commit, then ack" tested with
// real processes. alice (in this process) sends n numbered messages at a steady pace to
// bob, whose only client is the real headless command 'pfschat recv --follow --json',
// run as a child process (this test binary, see TestMain) and SIGKILLed at
// pseudo-random moments, then started again, at least minKills times. A kill comes
// after a random delay from the start, right after the k-th printed line, or a few
// milliseconds after alice's k-th send. At the end two plain 'pfschat recv --json' runs
// exit on their own, and the test checks:
//
//   - bob's store holds every message exactly once, in order, none undecryptable;
//   - every message was printed on stdout, always with its store id; a message is
//     printed again only by the next run with output after a SIGKILLed run that
//     printed it (recv marks a message read after printing it, so a kill in between
//     shows it once more: at least once, never lost, never twice after a clean exit);
//   - the last, clean recv prints nothing (everything already shown and marked read);
//   - the relay's queue for bob is empty (everything committed was acked);
//   - alice sees every message at least delivered (every message ends up read, and
//     read receipts are committed before the read mark).
//
// It takes about 7 s (-short: 60 messages, about 2 s). PFSCHAT_CRASH_SEED=N replays a
// run's kill schedule (the choices, not the timing of the processes).
func TestRecvSurvivesSIGKILL(t *testing.T) { recvCrashSoak(t, false, sqliteSoakRelay(t)) }

// TestRecvSurvivesSIGKILLDeliveryReceipts is the same soak with bob's recv run with
// --no-read-receipts, so that only delivery receipts tell alice anything: every message
// must end up exactly "delivered". A kill after a message is committed but before its
// delivery receipt is leaves the delivery un-acked; when the relay brings it again,
// the receipt is owed again.
func TestRecvSurvivesSIGKILLDeliveryReceipts(t *testing.T) {
	recvCrashSoak(t, true, sqliteSoakRelay(t))
}

// soakRelay is the relay a crash soak runs on: where alice and bob connect (bob's
// recv gets bobURL as --relay) and how many messages it still queues for a name.
type soakRelay struct {
	aliceURL, bobURL string
	queued           func(ctx context.Context, name string) (int, error)
}

func sqliteSoakRelay(t *testing.T) soakRelay {
	r := relaytest.Start(t)
	return soakRelay{aliceURL: r.URL, bobURL: r.URL, queued: func(ctx context.Context, name string) (int, error) {
		n, _, err := r.Store.QueueUsage(ctx, name)
		return n, err
	}}
}

func recvCrashSoak(t *testing.T, noReadReceipts bool, r soakRelay) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	n, minKills := 300, 12
	if testing.Short() {
		n, minKills = 60, 4
	}
	bin, err := exec.LookPath("pfschat") // the test binary itself, set up by TestMain
	if err != nil {
		t.Fatalf("the pfschat command is not in $PATH (TestMain sets it up): %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PFSCHAT_CRASH_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PFSCHAT_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay the kill schedule with PFSCHAT_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	passFile := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(passFile, chattest.Passphrase, 0o600); err != nil {
		t.Fatal(err)
	}
	// The stores sync as in production (FULL): the soak is about what survives.
	fullSync := func(p *chat.Profile) { p.StoreOptions.Synchronous = "" }
	bob := chattest.NewUserAt(t, r.bobURL, "bob", fullSync)
	alice := chattest.NewUserAt(t, r.aliceURL, "alice", fullSync)
	chattest.AddContact(t, bob, "alice") // receipts go only to contacts bob accepted
	bob.Close()                          // from now on only the child processes open bob's store
	chattest.AddContact(t, alice, "bob")

	// alice sends at a steady pace; sent reports once the relay has accepted them all.
	texts := make([]string, n)
	index := make(map[string]int, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("crash soak #%03d %08x", i, rng.Uint32())
		index[texts[i]] = i
	}
	const pace = 20 * time.Millisecond
	sent := make(chan error, 1)
	sentOne := make(chan struct{}, 1) // a tick after each send, for kills timed by the sender
	go func() {
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for _, text := range texts {
			select {
			case <-tick.C:
			case <-ctx.Done():
				sent <- ctx.Err()
				return
			}
			if _, err := alice.Send(ctx, "bob", text); err != nil {
				sent <- fmt.Errorf("send %q: %w", text, err)
				return
			}
			select {
			case sentOne <- struct{}{}:
			default:
			}
		}
		if left, err := alice.Flush(ctx); err != nil {
			sent <- fmt.Errorf("%d messages still in alice's outbox: %w", left, err)
			return
		}
		sent <- nil
	}()

	args := func(extra ...string) []string {
		a := []string{"--home", bob.Profile.Dir, "--relay", r.bobURL, "--passphrase-file", passFile, "recv", "--json"}
		if noReadReceipts {
			a = append(a, "--no-read-receipts")
		}
		return append(a, extra...)
	}
	var runs []*recvRun
	kills, senderDone := 0, false
	for kills < minKills || !senderDone {
		// A kill at a random moment, one of: a random delay after the start (start-up,
		// catching up with the backlog, following); right after the k-th printed line
		// (between printing and marking read); a few milliseconds after alice's k-th
		// send from now (while bob decrypts, commits and acks it).
		var delay, jitter time.Duration
		killAfterLine, killAfterSend := 0, 0
		switch rng.IntN(4) {
		case 0:
			delay = time.Duration(rng.Int64N(int64(600 * time.Millisecond)))
		case 1:
			killAfterLine = 1 + rng.IntN(15)
			delay = time.Second // if fewer lines come
		default:
			killAfterSend = 1 + rng.IntN(8)
			jitter = time.Duration(rng.Int64N(int64(6 * time.Millisecond)))
			delay = time.Second // if the sender is done
		}
		run := startRecv(t, bin, args("--follow"))
		timer := time.AfterFunc(delay, run.kill)
		sends := sentOne
		if killAfterSend == 0 {
			sends = nil
		}
	read:
		for {
			select {
			case line, ok := <-run.lines:
				if !ok {
					break read
				}
				run.add(t, line)
				if len(run.out) == killAfterLine {
					run.kill()
				}
			case <-sends:
				if killAfterSend--; killAfterSend == 0 {
					timer.Stop()
					timer = time.AfterFunc(jitter, run.kill)
					sends = nil
				}
			}
		}
		timer.Stop()
		run.wait()
		run.took = time.Since(run.started)
		runs = append(runs, run)
		if testing.Verbose() {
			t.Logf("run %d: killed after %v, printed %d", len(runs)-1, run.took.Round(time.Millisecond), len(run.out))
		}
		if !run.signaled() {
			t.Fatalf("run %d: recv --follow exited on its own (%v); stderr:\n%s", len(runs)-1, run.err, run.stderr.String())
		}
		kills++
		if !senderDone {
			select {
			case err := <-sent:
				if err != nil {
					t.Fatal(err)
				}
				senderDone = true
			default:
			}
		}
	}
	// Everything is on the relay now. A plain recv exits once it has printed the
	// backlog; a second one must find nothing left to show.
	for i := range 2 {
		run := startRecv(t, bin, args())
		timer := time.AfterFunc(30*time.Second, run.kill)
		for line := range run.lines {
			run.add(t, line)
		}
		timer.Stop()
		run.wait()
		runs = append(runs, run)
		if run.err != nil {
			t.Fatalf("final recv %d: %v; stderr:\n%s", i, run.err, run.stderr.String())
		}
		if i == 1 && len(run.out) > 0 {
			t.Errorf("the second clean recv printed %d messages again, first %q", len(run.out), run.out[0].Text)
		}
	}
	printed := 0
	for _, run := range runs {
		printed += len(run.out)
	}
	t.Logf("%d messages, %d SIGKILLs, %d runs, %d lines printed", n, kills, len(runs), printed)

	checkStdout(t, runs, texts, index)
	if t.Failed() {
		for ri, run := range runs {
			var nums []string
			for _, m := range run.out {
				nums = append(nums, fmt.Sprintf("%d(id %d)", index[m.Text], m.ID))
			}
			t.Logf("run %d (killed=%v, %v): %s", ri, run.signaled(), run.took.Round(time.Millisecond), strings.Join(nums, " "))
		}
	}
	ids := checkBobStore(ctx, t, bob, texts)
	for ri, run := range runs {
		for _, m := range run.out {
			if id := ids[index[m.Text]]; m.ID != id {
				t.Errorf("run %d printed %q with id %d; the store has it as %d", ri, m.Text, m.ID, id)
			}
		}
	}
	if left, err := r.queued(ctx, "bob"); err != nil {
		t.Fatal(err)
	} else if left > 0 {
		t.Errorf("the relay still queues %d messages for bob (committed but never acked)", left)
	}
	states := receiptStates(ctx, t, alice, n)
	for i, st := range states {
		if st < chat.Delivered || st == chat.Failed || (noReadReceipts && st != chat.Delivered) {
			t.Errorf("alice: message #%d is %v (printed: %s)", i, st, wherePrinted(runs, texts[i]))
		}
	}
}

// recvLine is one line of 'recv --json'.
type recvLine struct {
	ID     int64  `json:"id"`
	From   string `json:"from"`
	Text   string `json:"text"`
	State  string `json:"state"` // "undecryptable", or empty
	Reason string `json:"reason"`
}

// recvRun is one recv child process.
type recvRun struct {
	cmd    *exec.Cmd
	lines  chan string // closed at EOF on stdout
	stderr bytes.Buffer
	out    []recvLine
	err    error // from Wait

	started time.Time
	took    time.Duration
}

func startRecv(t *testing.T, bin string, args []string) *recvRun {
	t.Helper()
	run := &recvRun{cmd: exec.Command(bin, args...), lines: make(chan string, 64)}
	run.cmd.Stderr = &run.stderr
	stdout, err := run.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	run.started = time.Now()
	if err := run.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(run.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			run.lines <- sc.Text()
		}
	}()
	return run
}

func (run *recvRun) add(t *testing.T, line string) {
	t.Helper()
	var m recvLine
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("recv printed %q: %v", line, err)
	}
	run.out = append(run.out, m)
}

// kill sends SIGKILL; it may race with the process ending on its own, which is fine.
func (run *recvRun) kill() { run.cmd.Process.Kill() }

// wait reaps the process; call it after lines is closed.
func (run *recvRun) wait() { run.err = run.cmd.Wait() }

func (run *recvRun) signaled() bool {
	var ee *exec.ExitError
	if !errors.As(run.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// checkStdout: every message printed at least once, by alice, never twice in one run.
// A message is printed again only when the run that last printed it was SIGKILLed (it
// fell between printing and marking read), and only at the start of a run: recv prints
// its backlog first, oldest first, and the messages shown but not marked read are the
// oldest of it.
func checkStdout(t *testing.T, runs []*recvRun, texts []string, index map[string]int) {
	t.Helper()
	lastRun := make(map[string]int) // text -> the last run that printed it
	again := 0
	for ri, run := range runs {
		seen := make(map[string]bool)
		fresh := false // printed a message for the first time
		for _, m := range run.out {
			if m.State != "" {
				t.Errorf("run %d printed message %d from %s as %s: %s (decrypted twice?)", ri, m.ID, m.From, m.State, m.Reason)
				continue
			}
			if _, ok := index[m.Text]; !ok || m.From != "alice" {
				t.Errorf("run %d printed a message nobody sent: %+v", ri, m)
				continue
			}
			if seen[m.Text] {
				t.Errorf("run %d printed %q twice", ri, m.Text)
			}
			seen[m.Text] = true
			prev, ok := lastRun[m.Text]
			switch {
			case !ok:
				fresh = true
			case !runs[prev].signaled():
				t.Errorf("run %d printed %q again, after run %d had printed it and exited cleanly", ri, m.Text, prev)
			case fresh:
				t.Errorf("run %d printed %q again (first printed by run %d) after a message it printed for the first time", ri, m.Text, prev)
			default:
				again++
			}
			lastRun[m.Text] = ri
		}
	}
	missing := 0
	for _, text := range texts {
		if _, ok := lastRun[text]; !ok {
			if missing < 5 {
				t.Errorf("never printed: %q", text)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d messages never printed by any recv run", missing, len(texts))
	}
	t.Logf("%d messages printed again after a SIGKILL between printing and marking read", again)
}

// checkBobStore opens bob's store offline and checks his history with alice: every
// message exactly once, in order. It returns the store ids, by message number.
func checkBobStore(ctx context.Context, t *testing.T, bob *chattest.User, texts []string) []int64 {
	t.Helper()
	c, err := bob.Profile.NewController(ctx, bob.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ids := make([]int64, len(texts))
	k := 0
	for _, m := range chattest.FullHistory(t, c, "alice") { // oldest first
		switch {
		case m.Outgoing:
			t.Errorf("bob's history holds an outgoing message %q", m.Text)
		case m.State == chat.UndecryptableState:
			t.Errorf("bob's history holds an undecryptable message: %s", m.Reason)
		case k >= len(texts):
			t.Errorf("bob's history holds more than the %d messages sent: %q", len(texts), m.Text)
		case m.Text != texts[k]:
			t.Fatalf("bob's history: message %d is %q, want %q (lost, doubled or out of order)", k, m.Text, texts[k])
		default:
			ids[k] = m.ID
			k++
		}
	}
	if k < len(texts) {
		t.Errorf("bob's history holds %d of the %d messages sent", k, len(texts))
	}
	return ids
}

// receiptStates reopens alice once bob's last recv has exited (and so flushed every
// receipt it will send): after WaitSynced her store holds every receipt the relay had
// for her. It returns her n messages' delivery states, in sending order.
func receiptStates(ctx context.Context, t *testing.T, alice *chattest.User, n int) []chat.DeliveryState {
	t.Helper()
	alice.Reopen()
	c := alice.Controller
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := c.History(ctx, "bob", 0, n+10)
	if err != nil {
		t.Fatal(err)
	}
	var states []chat.DeliveryState
	for i := len(page) - 1; i >= 0; i-- {
		if page[i].Outgoing {
			states = append(states, page[i].State)
		}
	}
	if len(states) != n {
		t.Fatalf("alice's history holds %d messages to bob, want %d", len(states), n)
	}
	return states
}

func wherePrinted(runs []*recvRun, text string) string {
	var where []string
	for ri, run := range runs {
		for li, m := range run.out {
			if m.Text == text {
				where = append(where, fmt.Sprintf("run %d line %d of %d, killed=%v", ri, li+1, len(run.out), run.signaled()))
			}
		}
	}
	return strings.Join(where, "; ")
}
