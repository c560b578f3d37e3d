package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/storage"
)

// withdrawCrashEnv makes the test binary a crash child (withdrawCrashChild) instead of
// running tests: "point profile-dir".
const withdrawCrashEnv = "PFSCHAT_CHAT_WITHDRAW_CRASH_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(withdrawCrashEnv); v != "" {
		point, dir, _ := strings.Cut(v, " ")
		crashChildExit(withdrawCrashChild(point, dir))
	}
	if v := os.Getenv(placeCrashEnv); v != "" {
		crashChildExit(placeCrashChild(v))
	}
	os.Exit(m.Run())
}

// crashChildExit ends a crash child that returned instead of waiting for its SIGKILL.
func crashChildExit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// childRelay is the crash child's relay: it refuses every message for good (printing
// "refused CLIENT_ID" the first time) and, at crash point "sent", holds the first send
// after that refusal — the withdrawn notice — printing "crash" and never answering.
type childRelay struct {
	RelayClient
	point   string
	mu      sync.Mutex
	refused chan struct{} // closed at the first refusal
	done    bool
}

func (r *childRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	r.mu.Lock()
	first := !r.done
	r.done = true
	r.mu.Unlock()
	if first {
		fmt.Printf("refused %s\n", clientID)
		close(r.refused)
		return 0, &relay.ProtocolError{Code: relay.CodeForbidden, Message: "refused by the test"}
	}
	if r.point == "sent" {
		fmt.Println("crash")
		select {} // the parent kills the process here
	}
	return 0, &relay.ProtocolError{Code: relay.CodeForbidden, Message: "refused by the test"}
}

// withdrawCrashChild opens alice's profile in dir, sends "two" to bob, has the relay
// refuse it for good, and stops at the crash point for the parent's SIGKILL: "commit",
// just before the commit that carries two's withdrawn notice (the notice is encrypted,
// the refusal answered); "sent", once the notice is committed and on its way to the
// relay.
func withdrawCrashChild(point, dir string) error {
	ctx := context.Background()
	rel := &childRelay{point: point, refused: make(chan struct{})}
	p := Profile{Dir: dir, StoreOptions: storage.ClientOptions{KDF: testKDF, Synchronous: "NORMAL"}}
	p.Prefs.Dial = func(cfg client.Config) RelayClient { rel.RelayClient = client.New(cfg); return rel }
	c, err := p.Open(ctx, testPass)
	if err != nil {
		return fmt.Errorf("opening alice: %w", err)
	}
	if point == "commit" {
		c.mu.Lock()
		c.beforeCommit = func() {
			select {
			case <-rel.refused:
				fmt.Println("crash")
				select {} // the parent kills the process here
			default: // two's own commit
			}
		}
		c.mu.Unlock()
	}
	if _, err := c.Send(ctx, "bob", "two"); err != nil {
		return fmt.Errorf("sending two: %w", err)
	}
	select {} // the parent kills the process
}

// parentRelay refuses, for good, the sends whose client id is in refuse, and counts the
// others by client id.
type parentRelay struct {
	RelayClient
	mu     sync.Mutex
	refuse map[string]bool
	sent   map[string]int
}

func (r *parentRelay) Send(ctx context.Context, to string, body []byte, clientID string) (int64, error) {
	r.mu.Lock()
	refuse := r.refuse[clientID]
	if !refuse {
		r.sent[clientID]++
	}
	r.mu.Unlock()
	if refuse {
		return 0, &relay.ProtocolError{Code: relay.CodeForbidden, Message: "refused by the test"}
	}
	return r.RelayClient.Send(ctx, to, body, clientID)
}

// A crash around a refusal never loses the withdrawn notice nor sends it twice: alice's
// process is killed (SIGKILL) while the relay's refusal of two is being settled — just
// before the commit that carries the notice ("commit"), or once it is committed and
// being sent ("sent") — and after alice opens her profile again, bob gets exactly one
// withdrawn notice for two's number, and Gaps reports nothing.
func TestWithdrawnNoticeSurvivesCrash(t *testing.T) {
	for _, point := range []string{"commit", "sent"} {
		t.Run(point, func(t *testing.T) { withdrawnNoticeCrash(t, point) })
	}
}

func withdrawnNoticeCrash(t *testing.T, point string) {
	rel := &parentRelay{refuse: make(map[string]bool), sent: make(map[string]int)}
	alice, bob, clock := refusalPair(t, func(c RelayClient) RelayClient { rel.RelayClient = c; return rel })
	ctx := t.Context()
	sendOne(t, alice, bob)
	if n, err := alice.c.Flush(ctx); err != nil || n != 0 {
		t.Fatalf("flushing alice's outbox: %d left, %v", n, err)
	}
	alice.close()

	twoID := runWithdrawCrashChild(t, point, alice.p.Dir)

	// The relay would refuse two again: "commit" left it in the outbox (the refusal
	// and its notice commit together, and neither did).
	rel.mu.Lock()
	rel.refuse[twoID] = true
	clear(rel.sent)
	rel.mu.Unlock()
	alice.reopen()
	three, err := alice.c.Send(ctx, "bob", "three")
	must(t, err)
	waitAll(t, bob.c, "three and two's withdrawn notice",
		func(e Event) bool {
			return e.Kind == MessageReceived && e.Contact == "alice" && e.Message.Text == "three"
		},
		func(e Event) bool {
			return e.Kind == MessageReceived && e.Contact == "alice" && e.Message.State == Failed && e.Message.Seq == 2
		})
	if n, err := alice.c.Flush(ctx); err != nil || n != 0 {
		t.Fatalf("flushing alice's outbox: %d left, %v", n, err)
	}
	ah, err := alice.c.History(ctx, "bob", 0, 10)
	must(t, err)
	var threeID string
	for _, m := range ah {
		if m.ID == three.ID {
			threeID = m.clientID
		}
		if m.Seq == 2 && (m.State != Failed || m.clientID != twoID) {
			t.Errorf("alice's two: %+v, want failed with client id %s", m, twoID)
		}
	}
	// After the crash alice sent three and one notice, nothing else.
	rel.mu.Lock()
	var notices int
	for id, n := range rel.sent {
		if id != threeID {
			notices += n
		}
	}
	rel.mu.Unlock()
	if notices != 1 {
		t.Errorf("alice sent %d withdrawn notices after the crash, want 1", notices)
	}

	wantConversation(t, bob, `1 "one" delivered`, `2 "" failed`, `3 "three" delivered`)
	noGapsAfterAnHour(t, bob, clock)
}

// runWithdrawCrashChild runs withdrawCrashChild on the profile in dir, kills it with
// SIGKILL once it reports its crash point, and returns the client id of its refused
// message.
func runWithdrawCrashChild(t *testing.T, point, dir string) string {
	t.Helper()
	var twoID string
	runCrashChild(t, withdrawCrashEnv+"="+point+" "+dir, func(line string) {
		if id, ok := strings.CutPrefix(line, "refused "); ok {
			twoID = id
		}
	})
	if twoID == "" {
		t.Fatal("the crash child reported no refusal")
	}
	return twoID
}

// runCrashChild runs this test binary as a crash child with env (NAME=VALUE) added,
// hands every line it prints to line, and kills it with SIGKILL once it prints
// "crash". It fails the test if the child ends by itself or is not there in 30 s.
func runCrashChild(t *testing.T, env string, line func(string)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for crashed := false; !crashed; {
		select {
		case l, ok := <-lines:
			if !ok {
				err := cmd.Wait()
				t.Fatalf("the crash child ended before its crash point: %v\n%s", err, stderr.String())
			}
			line(l)
			crashed = l == "crash"
		case <-timeout.C:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("timed out waiting for the crash child's crash point\n%s", stderr.String())
		}
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	for range lines { // drain, so Wait can close the pipe
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the crash child did not die of SIGKILL: %v\n%s", err, stderr.String())
	}
}
