package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
	"pfschat/ratchet"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
	"pfschat/storage"
)

// headerQueue is the relay's queue with a witness: it decodes every normal message it
// stores and counts ratchet headers (sender, DH, PN, N) used for two different
// messages (two client ids) — a reused chain key and nonce.
type headerQueue struct {
	inner  atomic.Pointer[storage.Relay]
	mu     sync.Mutex
	seen   map[string]string // header -> client id
	reused []string
	n      int
}

func (q *headerQueue) Enqueue(ctx context.Context, msgs []storage.QueuedMessage) ([]storage.EnqueueResult, error) {
	q.mu.Lock()
	for _, m := range msgs {
		env, err := ratchet.DecodeEnvelope(m.Body)
		if err != nil {
			continue
		}
		q.n++
		key := fmt.Sprintf("%s>%s %s %d %d", m.From, m.To, hex.EncodeToString(env.Header.DH), env.Header.PN, env.Header.N)
		if id, ok := q.seen[key]; ok && id != m.ClientID {
			q.reused = append(q.reused, key)
		}
		q.seen[key] = m.ClientID
	}
	q.mu.Unlock()
	return q.inner.Load().Enqueue(ctx, msgs)
}

func (q *headerQueue) Pending(ctx context.Context, to string, afterID int64, limit int) ([]storage.QueuedMessage, error) {
	return q.inner.Load().Pending(ctx, to, afterID, limit)
}

func (q *headerQueue) Ack(ctx context.Context, to string, ids []int64) error {
	return q.inner.Load().Ack(ctx, to, ids)
}

var _ server.Queue = (*headerQueue)(nil)

func startWitnessedRelay(t *testing.T) (*relaytest.Relay, *headerQueue) {
	q := &headerQueue{seen: make(map[string]string)}
	r := relaytest.StartWith(t, relaytest.Options{Queue: q})
	q.inner.Store(r.Store)
	return r, q
}

func (q *headerQueue) check(t *testing.T) {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.reused) > 0 {
		t.Errorf("%d ratchet headers reused for different messages, first %s", len(q.reused), q.reused[0])
	}
	t.Logf("%d messages through the relay, 0 reused (DH, PN, N) headers", q.n)
}

// daemonProc is a `pfschat daemon` child process.
type daemonProc struct {
	httpURL, secret string // with --http: the API's base URL and its bearer secret
	cmd             *exec.Cmd
	stderr          bytes.Buffer
	done            chan struct{}
	err             error
}

// startDaemon starts `pfschat daemon` on home and waits until it serves its socket.
func startDaemon(t *testing.T, bin string, global []string, extra ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: exec.Command(bin, append(append(append([]string(nil), global...), "daemon"), extra...)...), done: make(chan struct{})}
	d.cmd.Stderr = &d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	readyWord := "serving"
	if slices.Contains(extra, "--http") {
		readyWord = "HTTP API on"
	}
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said && strings.Contains(sc.Text(), readyWord) {
				if readyWord != "serving" { // "HTTP API on http://ADDR/api/v1/ (bearer secret in PATH)"
					f := strings.Fields(sc.Text())
					d.httpURL = strings.TrimSuffix(f[5], "/api/v1/")
					b, _ := os.ReadFile(strings.TrimSuffix(f[len(f)-1], ")"))
					d.secret = strings.TrimSpace(string(b))
				}
				said = true
				ready <- true
			}
		}
		if !said {
			ready <- false
		}
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() { d.cmd.Process.Kill(); <-d.done })
	select {
	case ok := <-ready:
		if !ok {
			<-d.done
			t.Fatalf("pfschat daemon did not start: %v\n%s", d.err, d.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("pfschat daemon did not start within a minute:\n%s", d.stderr.String())
	}
	return d
}

func (d *daemonProc) pid() int { return d.cmd.Process.Pid }

func (d *daemonProc) kill9() { d.cmd.Process.Kill(); <-d.done }

func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	if d.err != nil {
		t.Fatalf("pfschat daemon after SIGTERM: %v\n%s", d.err, d.stderr.String())
	}
}

// pfschat runs the command to the end and returns its output and exit code.
func pfschat(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

type procSetup struct {
	bin      string
	r        *relaytest.Relay
	q        *headerQueue
	bob      *chattest.User
	alice    *chattest.User
	bobFlags []string
}

func setupProcs(t *testing.T) *procSetup {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs UNIX sockets and SIGKILL")
	}
	bin, err := exec.LookPath("pfschat") // the test binary itself, set up by TestMain
	if err != nil {
		t.Fatalf("the pfschat command is not in $PATH (TestMain sets it up): %v", err)
	}
	r, q := startWitnessedRelay(t)
	passFile := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(passFile, chattest.Passphrase, 0o600); err != nil {
		t.Fatal(err)
	}
	bob := chattest.NewUser(t, r, "bob")
	bob.Close() // from now on only child processes open bob's profile
	alice := chattest.NewUser(t, r, "alice")
	chattest.AddContact(t, alice, "bob")
	return &procSetup{bin: bin, r: r, q: q, bob: bob, alice: alice,
		bobFlags: []string{"--home", bob.Profile.Dir, "--relay", r.URL, "--passphrase-file", passFile}}
}

func (s *procSetup) bobArgs(args ...string) []string {
	return append(append([]string(nil), s.bobFlags...), args...)
}

// checkIncoming opens bob's profile (no process holds it any more) and checks that his
// history holds exactly texts from alice, in order, none undecryptable; it returns
// the store ids by text.
func (s *procSetup) checkIncoming(t *testing.T, texts []string) map[string]int64 {
	t.Helper()
	c, err := s.bob.Profile.NewController(t.Context(), s.bob.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ids := make(map[string]int64)
	k := 0
	for _, m := range chattest.FullHistory(t, c, "alice") {
		switch {
		case m.Outgoing:
		case m.State == chat.UndecryptableState:
			t.Errorf("bob's history holds an undecryptable message: %s", m.Reason)
		case k >= len(texts) || m.Text != texts[k]:
			t.Fatalf("bob's history: incoming message %d is %q (lost, doubled or out of order)", k, m.Text)
		default:
			ids[m.Text] = m.ID
			k++
		}
	}
	if k != len(texts) {
		t.Errorf("bob's history holds %d of the %d messages alice sent", k, len(texts))
	}
	return ids
}

// One owner per profile, with real processes: while `pfschat daemon` holds bob's
// profile a second daemon and an in-process opener are refused with the holder named;
// two `recv --follow` processes (which used to turn messages into permanent
// "undecryptable" entries) and two concurrent senders (which used to reuse chain keys)
// go through the daemon: nothing lost, nothing undecryptable, no header reused. Without
// a daemon, concurrent senders each take the lock or are refused; none corrupts.
func TestDaemonOneOwnerTwoProcesses(t *testing.T) {
	s := setupProcs(t)
	n, k := 40, 6 // messages to bob; sends per sender
	if testing.Short() {
		n, k = 12, 3
	}
	d := startDaemon(t, s.bin, s.bobFlags)

	_, stderr, code := pfschat(t, s.bin, s.bobArgs("daemon")...)
	want := fmt.Sprintf("is open in pfschat (pid %d, pfschat daemon); stop the daemon to run this (the commands it can serve go through it)", d.pid())
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("a second daemon: exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
	if _, err := s.bob.Profile.Open(t.Context(), s.bob.Passphrase); !errors.Is(err, profile.ErrLocked) {
		t.Fatalf("opening bob in-process while the daemon holds it: %v", err)
	}
	if out, stderr, code := pfschat(t, s.bin, s.bobArgs("add", "alice")...); code != 0 || !strings.Contains(out, "added alice") {
		t.Fatalf("add through the daemon: exit %d, %q %q", code, out, stderr)
	}
	if out, stderr, code := pfschat(t, s.bin, s.bobArgs("contacts")...); code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("contacts through the daemon: exit %d, %q %q", code, out, stderr)
	}

	// Two recv --follow at once, through the daemon.
	recvs := []*recvRun{startRecv(t, s.bin, s.bobArgs("recv", "--follow", "--json")), startRecv(t, s.bin, s.bobArgs("recv", "--follow", "--json"))}
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("two readers #%03d", i)
		if _, err := s.alice.Send(t.Context(), "bob", texts[i]); err != nil {
			t.Fatal(err)
		}
	}
	printed := make(map[string]bool)
	deadline := time.After(60 * time.Second)
	for len(printed) < n {
		select {
		case line := <-recvs[0].lines:
			recvs[0].add(t, line)
		case line := <-recvs[1].lines:
			recvs[1].add(t, line)
		case <-deadline:
			t.Fatalf("after a minute the two recv printed %d of %d messages", len(printed), n)
		}
		for _, run := range recvs {
			for _, m := range run.out {
				if m.State != "" {
					t.Fatalf("recv printed an undecryptable message: %+v", m)
				}
				printed[m.Text] = true
			}
		}
	}
	for ri, run := range recvs {
		run.kill()
		for range run.lines {
		}
		run.wait()
		seen := map[string]bool{}
		for _, m := range run.out {
			if seen[m.Text] {
				t.Errorf("recv %d printed %q twice", ri, m.Text)
			}
			seen[m.Text] = true
		}
	}

	// Two senders at once, through the daemon.
	var wg sync.WaitGroup
	errs := make(chan error, 2*k)
	var sent []string
	var mu sync.Mutex
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range k {
				text := fmt.Sprintf("sender %d #%d", g, i)
				out, stderr, code := pfschat(t, s.bin, s.bobArgs("send", "alice", text)...)
				if code != 0 || !strings.HasPrefix(out, "sent to alice") {
					errs <- fmt.Errorf("send %q through the daemon: exit %d, %q %q", text, code, out, stderr)
					continue
				}
				mu.Lock()
				sent = append(sent, text)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	d.stop(t)

	// Without a daemon: two senders at once each hold the profile or are refused.
	for i := range k {
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				text := fmt.Sprintf("direct %d #%d", g, i)
				out, stderr, code := pfschat(t, s.bin, s.bobArgs("send", "alice", text)...)
				switch {
				case code == 0 && strings.HasPrefix(out, "sent to alice"):
					mu.Lock()
					sent = append(sent, text)
					mu.Unlock()
				case code == 1 && strings.Contains(stderr, "is open in pfschat (pid ") && strings.Contains(stderr, "a pfschat command"):
				default:
					t.Errorf("direct send %q: exit %d, %q %q", text, code, out, stderr)
				}
			}()
		}
		wg.Wait()
	}
	got := make(map[string]bool)
	for len(got) < len(sent) {
		ev := chattest.WaitEvent(t, s.alice, "bob's messages", func(e chat.Event) bool {
			return (e.Kind == chat.MessageReceived || e.Kind == chat.Undecryptable) && e.Contact == "bob"
		})
		if ev.Kind == chat.Undecryptable || ev.Message.State == chat.UndecryptableState {
			t.Fatalf("alice could not decrypt a message from bob: %v", ev.Err)
		}
		got[ev.Message.Text] = true
	}
	for _, text := range sent {
		if !got[text] {
			t.Errorf("alice never got %q", text)
		}
	}
	s.checkIncoming(t, texts)
	s.q.check(t)
	t.Logf("%d messages to bob read by two recv processes; %d sent by concurrent senders", n, len(sent))
}

// The daemon SIGKILLed mid-stream, again and again, while alice sends and a `recv
// --follow --json` reads through it: every message alice sent ends up in bob's store
// once, none undecryptable, every one printed at least once and always with the same
// store id (at-least-once with stable ids, like recv), and after a clean recv nothing
// is left unread. PFSCHAT_CRASH_SEED=N replays the kill schedule.
func TestDaemonSurvivesSIGKILL(t *testing.T) {
	s := setupProcs(t)
	n, kills := 120, 8
	if testing.Short() {
		n, kills = 30, 3
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PFSCHAT_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("daemon soak #%03d %08x", i, rng.Uint32())
	}
	sent := make(chan error, 1)
	go func() {
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		for _, text := range texts {
			<-tick.C
			if _, err := s.alice.Send(t.Context(), "bob", text); err != nil {
				sent <- err
				return
			}
		}
		_, err := s.alice.Flush(t.Context())
		sent <- err
	}()
	var runs []*recvRun
	senderDone := false
	for i := 0; i < kills || !senderDone; i++ {
		d := startDaemon(t, s.bin, s.bobFlags)
		run := startRecv(t, s.bin, s.bobArgs("recv", "--follow", "--json"))
		delay := time.Duration(50+rng.IntN(400)) * time.Millisecond
		timer := time.AfterFunc(delay, d.kill9)
		// A recv that had not reached the daemon when it died found no owner and owns
		// the profile itself; --follow then never ends, so it is SIGKILLed too (one more
		// crash the no-loss, no-duplicate check below must survive).
		recvTimer := time.AfterFunc(delay+10*time.Second, func() { run.cmd.Process.Kill() })
		for line := range run.lines { // ends when the daemon dies: recv loses its owner
			run.add(t, line)
		}
		run.wait()
		timer.Stop()
		recvTimer.Stop()
		d.kill9()
		runs = append(runs, run)
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
	// The SIGKILLed daemon left its socket file: a command finds no owner behind it and
	// opens the profile itself.
	if out, stderr, code := pfschat(t, s.bin, s.bobArgs("contacts")...); code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("contacts after the daemon was killed: exit %d, %q %q", code, out, stderr)
	}
	// Clean: a daemon, a recv that prints the rest, a second that prints nothing.
	d := startDaemon(t, s.bin, s.bobFlags)
	for i := range 2 {
		out, stderr, code := pfschat(t, s.bin, s.bobArgs("recv", "--json")...)
		if code != 0 {
			t.Fatalf("final recv %d: exit %d, %s", i, code, stderr)
		}
		run := &recvRun{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line != "" {
				run.add(t, line)
			}
		}
		if i == 1 && len(run.out) > 0 {
			t.Errorf("the second clean recv printed %d messages again", len(run.out))
		}
		runs = append(runs, run)
	}
	d.stop(t)
	ids := s.checkIncoming(t, texts)
	printed := make(map[string]bool)
	total := 0
	for ri, run := range runs {
		for _, m := range run.out {
			total++
			if m.State != "" {
				t.Errorf("run %d printed an undecryptable message: %+v", ri, m)
			}
			if id, ok := ids[m.Text]; !ok || id != m.ID {
				t.Errorf("run %d printed %q with id %d; the store has %d", ri, m.Text, m.ID, id)
			}
			printed[m.Text] = true
		}
	}
	for _, text := range texts {
		if !printed[text] {
			t.Errorf("never printed: %q", text)
		}
	}
	if left, _, err := s.r.Store.QueueUsage(t.Context(), "bob"); err != nil || left > 0 {
		t.Errorf("the relay still queues %d messages for bob (%v)", left, err)
	}
	s.q.check(t)
	t.Logf("%d messages, %d daemon SIGKILLs, %d lines printed", n, len(runs)-2, total)
}

// The daemon's HTTP API SIGKILLed mid-stream: an SSE client reads GET /api/v1/events and
// marks each message read with POST /api/v1/rpc, while alice sends and the daemon is
// killed and restarted (a new port, a new secret): every message reaches bob's store
// once, none undecryptable, and the SSE client sees every one at least once, always
// with the same id.
func TestDaemonSSESurvivesSIGKILL(t *testing.T) {
	s := setupProcs(t)
	n, kills := 60, 5
	if testing.Short() {
		n, kills = 20, 2
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("sse soak #%03d", i)
	}
	sent := make(chan error, 1)
	go func() {
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		for _, text := range texts {
			<-tick.C
			if _, err := s.alice.Send(t.Context(), "bob", text); err != nil {
				sent <- err
				return
			}
		}
		_, err := s.alice.Flush(t.Context())
		sent <- err
	}()
	seen := make(map[string]int64) // text -> id
	lines := 0
	read := func(d *daemonProc, until func() bool) {
		req, _ := http.NewRequest("GET", d.httpURL+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+d.secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if until != nil {
				t.Fatalf("events: %v", err)
			}
			return // killed before we connected
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("events: %s", resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var n daemon.Notification
			var ev daemon.Event
			if json.Unmarshal([]byte(data), &n) != nil || json.Unmarshal(n.Params, &ev) != nil {
				t.Fatalf("bad SSE data %q", data)
			}
			if n.Method != daemon.NotifyMessage || ev.Message == nil {
				continue
			}
			m := ev.Message
			lines++
			if m.State != "sent" && m.State != "delivered" && m.State != "read" && m.State != "pending" {
				t.Errorf("SSE message %+v", m)
			}
			if id, ok := seen[m.Text]; ok && id != m.ID {
				t.Errorf("%q came with id %d, earlier with %d", m.Text, m.ID, id)
			}
			seen[m.Text] = m.ID
			body := fmt.Sprintf(`{"jsonrpc":"2.0","method":"markRead","params":{"contact":%q,"through":%d},"id":1}`, m.Contact, m.ID)
			req, _ := http.NewRequest("POST", d.httpURL+"/api/v1/rpc", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+d.secret)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			if until != nil && until() {
				return
			}
		}
	}
	senderDone := false
	for i := 0; i < kills || !senderDone; i++ {
		d := startDaemon(t, s.bin, s.bobFlags, "--http", "127.0.0.1:0")
		timer := time.AfterFunc(time.Duration(50+rng.IntN(300))*time.Millisecond, d.kill9)
		read(d, nil) // ends when the daemon dies
		timer.Stop()
		d.kill9()
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
	d := startDaemon(t, s.bin, s.bobFlags, "--http", "127.0.0.1:0")
	if len(seen) < n {
		read(d, func() bool { return len(seen) == n })
	}
	d.stop(t)
	ids := s.checkIncoming(t, texts)
	for _, text := range texts {
		if id, ok := seen[text]; !ok {
			t.Errorf("never seen over SSE: %q", text)
		} else if id != ids[text] {
			t.Errorf("%q had id %d over SSE, %d in the store", text, id, ids[text])
		}
	}
	s.q.check(t)
	t.Logf("%d messages, %d daemon SIGKILLs, %d SSE message events", n, kills, lines)
}
