package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"pfschat/assets"
	"pfschat/chat"
	"pfschat/chat/profile"
	"pfschat/relay/server"
	"pfschat/storage"
	"pfschat/ui"
)

// DemoUser is the name of the person at the keyboard in `pfschat demo`.
const DemoUser = "you"

// EchoName is the demo's echo contact.
const EchoName = "echo"

// runDemo runs `pfschat demo`: a relay on a free loopback port, a throwaway profile and
// an echo contact, all in this process and a temporary directory that is removed on
// exit. It reads no passphrase: the demo's profiles are the only unsealed ones.
func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pfschat demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var flags profile.Flags
	flags.Register(fs, profile.Demo)
	fs.Usage = usageOf(fs, stderr, "usage: pfschat demo [flags]   (UI + embedded relay + an echo contact, throwaway profile)\n")
	if code, ok := parseNoArgs(fs, args, stderr, "pfschat demo: unexpected argument %q; see pfschat demo --help\n"); !ok {
		return code
	}
	logger := slog.New(slog.DiscardHandler)
	if path, err := profile.DemoLogFile(); err == nil {
		if l, closeLog, err := openLog(path); err == nil {
			logger = l
			defer closeLog()
		}
	}
	slog.SetDefault(logger) // nothing may print over the UI
	dir, err := os.MkdirTemp("", "pfschat-demo-*")
	if err != nil {
		fmt.Fprintf(stderr, "pfschat demo: temporary directory: %v\n", err)
		return exitFail
	}
	defer os.RemoveAll(dir)

	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	d, err := StartDemo(startCtx, dir, logger)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "pfschat demo: %v\n", err)
		return exitFail
	}
	defer d.Close()
	return runProgram(ctx, ui.Options{Backend: d.Me, OpenContact: EchoName, Bell: !flags.NoBell, Logger: logger, Notifier: ui.DetectNotifier(os.Getenv)}, stdin, stdout, stderr)
}

// DemoEnv is a running demo: an in-process relay, the person's controller (Me) and the
// echo contact's controller. Tests use it too.
type DemoEnv struct {
	Me       *chat.Controller
	Echo     *chat.Controller
	RelayURL string

	store  *storage.Relay
	server *server.Server
	http   *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// StartDemo starts the relay, creates both throwaway profiles (no passphrase) under dir,
// and starts the echo bot, which greets with the demo script and answers every message.
//
// Everything here is thrown away on exit, so the relay's and both profiles' stores run
// with synchronous=NORMAL (no fsync per commit), and the two profiles are created side
// by side: the demo's first frame waits for this (issue 14: ≤ 250 ms from exec;
// BenchmarkDemoFirstFrame in package main measures it). The greeting is sent by the
// bot once the demo runs, so it arrives while the first frame is already up.
func StartDemo(ctx context.Context, dir string, logger *slog.Logger) (_ *DemoEnv, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &DemoEnv{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	d.store, err = storage.OpenRelay(ctx, filepath.Join(dir, "relay.db"), storage.RelayOptions{Synchronous: storage.SyncNormal})
	if err != nil {
		return nil, fmt.Errorf("relay store: %w", err)
	}
	d.server, err = server.New(ctx, server.Config{Store: d.store, Logger: logger.With("part", "relay")})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay listener: %w", err)
	}
	d.http = &http.Server{Handler: d.server, ReadHeaderTimeout: 10 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("demo relay", "err", err)
		}
	}()
	d.RelayURL = "ws://" + ln.Addr().String()

	// nil passphrase: throwaway profiles, unsealed (the one exception to "never empty").
	demoProfile := func(name string) chat.Profile {
		return chat.Profile{Dir: filepath.Join(dir, name), Device: "demo",
			StoreOptions: storage.ClientOptions{Synchronous: storage.SyncNormal},
			Prefs:        chat.Preferences{Logger: logger.With("part", name), AllowOffline: true, StayUp: true}}
	}
	both := func(echo, me func() error) error {
		var echoErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			echoErr = echo()
		}()
		err := me()
		<-done
		return errors.Join(echoErr, err)
	}
	err = both(func() (err error) {
		if d.Echo, err = demoProfile(EchoName).Create(ctx, EchoName, nil, d.RelayURL); err != nil {
			return fmt.Errorf("echo profile: %w", err)
		}
		return nil
	}, func() (err error) {
		if d.Me, err = demoProfile(DemoUser).Create(ctx, DemoUser, nil, d.RelayURL); err != nil {
			return fmt.Errorf("demo profile: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = both(func() error {
		if _, err := d.Echo.AddContact(ctx, DemoUser); err != nil {
			return fmt.Errorf("echo adding you: %w", err)
		}
		return nil
	}, func() error {
		if _, err := d.Me.AddContact(ctx, EchoName); err != nil {
			return fmt.Errorf("adding echo: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	botCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for _, line := range assets.DemoScript() {
			if _, err := d.Echo.Send(botCtx, DemoUser, line); err != nil {
				logger.Warn("echo: greeting", "err", err)
				break
			}
		}
		runEcho(botCtx, d.Echo, logger)
	}()
	return d, nil
}

// runEcho answers every message with the text reversed and the session's message
// number, through the echo's own ratchet session.
func runEcho(ctx context.Context, c *chat.Controller, logger *slog.Logger) {
	counts := map[string]int{} // received messages per session
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-c.Events():
			if !ok {
				return
			}
			if ev.Kind != chat.MessageReceived || ev.Message == nil || ev.Message.Outgoing {
				continue
			}
			if err := c.MarkRead(ctx, ev.Contact); err != nil {
				logger.Warn("echo: mark read", "err", err)
			}
			reply := echoReply(ctx, c, ev.Contact, ev.Message.Text, counts)
			if _, err := c.Send(ctx, ev.Contact, reply); err != nil {
				logger.Warn("echo: reply", "err", err)
			}
		}
	}
}

func echoReply(ctx context.Context, c *chat.Controller, contact, text string, counts map[string]int) string {
	r := []rune(text)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	session := "?"
	n := 0
	if ct, err := c.Contact(ctx, contact); err == nil {
		if s, err := c.ActiveSession(ctx, ct.CardID); err == nil && s != nil {
			session = s.ID()
			if len(session) > 8 {
				session = session[:8]
			}
			counts[session]++
			n = counts[session]
			if rc, ok := any(s).(interface{ ReceiveCount() uint32 }); ok {
				n = int(rc.ReceiveCount())
			}
		}
	}
	return fmt.Sprintf("%s  (message #%d of session %s)", string(r), n, session)
}

// Close stops the echo, both controllers and the relay. Safe to call twice.
func (d *DemoEnv) Close() {
	d.once.Do(func() {
		if d.cancel != nil {
			d.cancel()
		}
		if d.Echo != nil {
			d.Echo.Close()
		}
		if d.Me != nil {
			d.Me.Close()
		}
		if d.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if d.server != nil {
				_ = d.server.Shutdown(ctx)
			}
			_ = d.http.Shutdown(ctx)
			cancel()
		}
		d.wg.Wait()
		if d.store != nil {
			d.store.Close()
		}
	})
}
