package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"pfschat/chat/profile"
	"pfschat/relay/server"
	"pfschat/storage"
)

// TestMain lets the txtar scripts run "pfschat" as a real command: the test binary
// re-executes itself and dispatches exactly as main does.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"pfschat": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
		"pfschat-unlock": unlockProbe, // BenchmarkColdUnlock's fresh process
	})
}

// TestScripts runs testdata/script/*.txtar: the headless commands as a person would use
// them, against a real relay. Each script gets its own relay ($RELAY) and these extra
// commands:
//
//	relay stop|start   stop the relay (it refuses connections) or start it again on the
//	                   same address and database
//	relay rotate-key [--compromised]
//	                   stop, run `pfschat relay rotate-key`, start again
//	samedigits A B     files A and B show the same 60-digit safety number
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			r := &scriptRelay{path: filepath.Join(env.WorkDir, "relay.db")}
			if err := r.start("127.0.0.1:0"); err != nil {
				return err
			}
			env.Values["relay"] = r
			env.Setenv("RELAY", "ws://"+r.addr)
			// The same relay by an address that is not loopback by its spelling (0.0.0.0
			// reaches the local host): plain ws:// to it needs --insecure-ws.
			env.Setenv("RELAY_NOT_LOOPBACK", "ws://0.0.0.0:"+r.addr[strings.LastIndex(r.addr, ":")+1:])
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("PFSCHAT_HOME", filepath.Join(env.WorkDir, "default-profile"))
			env.Defer(r.stop)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"relay": func(ts *testscript.TestScript, neg bool, args []string) {
				r := ts.Value("relay").(*scriptRelay)
				if !neg && len(args) >= 1 && args[0] == "rotate-key" {
					ts.Check(r.rotateKey(args[1:]))
					return
				}
				if neg || len(args) != 1 {
					ts.Fatalf("usage: relay stop|start|rotate-key [--compromised]")
				}
				switch args[0] {
				case "stop":
					r.stop()
				case "start":
					ts.Check(r.start(r.addr))
				default:
					ts.Fatalf("usage: relay stop|start")
				}
			},
			"samedigits": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: samedigits FILE1 FILE2")
				}
				a, b := safetyDigits(ts.ReadFile(args[0])), safetyDigits(ts.ReadFile(args[1]))
				same := len(a) == 60 && a == b
				if same == neg {
					ts.Fatalf("safety numbers %q and %q: same=%v", a, b, same)
				}
			},
		},
	})
}

var groupOf5 = regexp.MustCompile(`\b\d{5}\b`)

func safetyDigits(s string) string {
	out := ""
	for _, g := range groupOf5.FindAllString(s, -1) {
		out += g
	}
	return out
}

// scriptRelay is a relay a script can stop and start again on the same address.
type scriptRelay struct {
	path  string
	addr  string
	full  bool // refuse sends: its disk is below the high-water mark
	store *storage.Relay
	srv   *server.Server
	hs    *http.Server
}

func (r *scriptRelay) start(addr string) error {
	ctx := context.Background()
	st, err := storage.OpenRelay(ctx, r.path, storage.RelayOptions{})
	if err != nil {
		return err
	}
	cfg := server.Config{Store: st}
	if r.full { // as pfschat relay --min-free-mib 100000000 on any disk: sends refused (storage_full)
		cfg.Disk = server.DiskConfig{Dir: filepath.Dir(r.path), MinFreeBytes: 100000000 << 20}
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		st.Close()
		return err
	}
	var ln net.Listener
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old socket may linger briefly; not test synchronisation
	}
	if err != nil {
		srv.Shutdown(ctx)
		st.Close()
		return fmt.Errorf("relay: listening on %s: %w", addr, err)
	}
	r.addr, r.store, r.srv = ln.Addr().String(), st, srv
	r.hs = &http.Server{Handler: srv}
	go r.hs.Serve(ln)
	return nil
}

// rotateKey stops the relay, changes its key with `pfschat relay rotate-key` and
// starts it again.
func (r *scriptRelay) rotateKey(args []string) error {
	r.stop()
	var out bytes.Buffer
	if code := run(context.Background(), append([]string{"relay", "rotate-key", "--db", r.path}, args...), nil, &out, &out); code != 0 {
		return fmt.Errorf("rotate-key: exit %d: %s", code, out.String())
	}
	return r.start(r.addr)
}

func (r *scriptRelay) stop() {
	if r.hs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
	r.hs.Shutdown(ctx)
	r.store.Close()
	r.hs = nil
}

// main's command detection agrees with the flag definitions: with any global flag
// before it (and its value, when the flag takes one), the command word is still found.
// A flag misjudged as taking no value would make its value the command; one misjudged
// as taking a value would swallow the command word.
func TestCommandDetectionAgreesWithFlagDefinitions(t *testing.T) {
	profile.VisitAll(func(fl *flag.Flag) {
		before := []string{"--" + fl.Name}
		if profile.TakesValue(fl.Name) {
			before = append(before, "VALUE")
		}
		args := append(before, "relay", "--help")
		var out, errb bytes.Buffer
		if code := run(t.Context(), args, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "usage: pfschat relay") {
			t.Errorf("pfschat %s: exit %d, stdout %q; want the relay's usage", strings.Join(args, " "), code, out.String())
		}
	})
}
