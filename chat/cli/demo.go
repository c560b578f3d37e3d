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
	"runtime/debug"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"

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
	fs.Usage = usageOf(fs, "usage: pfschat demo [flags]   (UI + embedded relay + an echo contact, throwaway profile)\n")
	if code, ok := parseNoArgs(fs, args, stdout, stderr, "pfschat demo: unexpected argument %q; see pfschat demo --help\n"); !ok {
		return code
	}
	if msg := notATerminal("pfschat demo", stdin, stdout); msg != "" {
		fmt.Fprintln(stderr, msg)
		return exitUsage
	}
	logger := slog.New(slog.DiscardHandler)
	if path, err := profile.DemoLogFile(); err == nil {
		if l, closeLog, err := openLog(path); err == nil {
			logger = l
			defer closeLog()
		}
	}
	slog.SetDefault(logger) // nothing may print over the UI
	// The UI's first frame builds go-runewidth's 2 MiB width table (5–7 ms of CPU, its
	// first rune above U+02FF); build it now, on the core the relay's start leaves idle.
	go ansi.StringWidthWc("─")
	dir, err := os.MkdirTemp("", "pfschat-demo-*")
	if err != nil {
		fmt.Fprintf(stderr, "pfschat demo: temporary directory: %v\n", err)
		return exitFail
	}
	defer os.RemoveAll(dir)

	resumeGC := pauseGC()
	defer resumeGC()
	// The setup (a relay, both profiles) runs behind the UI's starting screen
	// (ui.Options.Start): Bubble Tea writes frames on a ticker that starts with the
	// program, so the first frame with the conversation then waits for at most one
	// tick after the setup instead of for the program's start and a whole tick.
	startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
	defer cancelStart()
	var d *DemoEnv
	var startErr error
	setUp := make(chan struct{})
	go func() {
		defer close(setUp)
		if d, startErr = StartDemo(startCtx, dir, logger); startErr == nil {
			d.onGreet = resumeGC
		}
	}()
	start := func(ctx context.Context) (ui.Backend, error) {
		select {
		case <-setUp:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if startErr != nil {
			return nil, startErr
		}
		return d.Backend(), nil
	}
	// Files the echo sends back are saved in the demo's directory, removed on exit with
	// the rest: a tour leaves nothing in the user's own downloads.
	err = ui.Run(ctx, ui.Options{Start: start, OpenContact: EchoName, Bell: !flags.NoBell, Logger: logger,
		Notifier: ui.DetectNotifier(os.Getenv), DownloadDir: filepath.Join(dir, "downloads")}, stdin, stdout)
	cancelStart() // the UI may have ended before the setup did
	<-setUp
	if d != nil {
		d.Close()
	}
	switch {
	case err != nil && startErr != nil && errors.Is(err, startErr):
		fmt.Fprintf(stderr, "pfschat demo: %v\n", err)
		return exitFail
	case err != nil:
		logger.Error("ui", "err", err)
		fmt.Fprintf(stderr, "pfschat: %v\n", err)
		return exitFail
	}
	return exitOK
}

// pauseGC turns the garbage collector off until resume, with a 256 MiB memory limit as
// the safety net, unless GOGC or GOMEMLIMIT say otherwise. The demo's setup and first
// frame leave a heap of a few MiB: a collection among them frees nothing worth its
// CPU, and on a busy machine its stop-the-world waits for descheduled threads (issue
// 14: 10 ms of CPU, and more of wall time, before the first frame).
func pauseGC() (resume func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	percent := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(256 << 20)
	var once sync.Once
	return func() {
		once.Do(func() {
			debug.SetGCPercent(percent)
			debug.SetMemoryLimit(limit)
		})
	}
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

	botCtx     context.Context
	logger     *slog.Logger
	greetOnce  sync.Once
	topUpDelay time.Duration
	toppedUp   chan struct{} // closed when topUpDemoKeys is done
	onGreet    func()        // when set, called as the echo starts (runDemo: resumeGC)
	echoFiles  string        // where the echo saves the files it sends back
}

// StartDemo starts the relay and creates both throwaway profiles (no passphrase) under
// dir, each holding the other as a contact. The echo bot, which greets with the demo
// script and answers every message, starts when the UI first asks Backend for its
// contact list.
//
// Everything here is thrown away on exit, so the relay's and both profiles' stores run
// with synchronous=NORMAL (no fsync per commit), and the two profiles are created side
// by side with only demoFirstKeys one-time prekeys each: the demo's first frame waits
// for this (issue 14: ≤ 250 ms from exec; BenchmarkDemoFirstFrame in package main
// measures it). The greeting and the prekey top-up come after.
func StartDemo(ctx context.Context, dir string, logger *slog.Logger) (_ *DemoEnv, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &DemoEnv{topUpDelay: demoTopUpDelay, toppedUp: make(chan struct{}), echoFiles: filepath.Join(dir, "echo-files")}
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
	// Each starts with demoFirstKeys one-time prekeys of each kind, enough for the one
	// bundle the other fetches; both are topped up to chat.DefaultOneTimeKeys
	// demoTopUpDelay after the greeting (topUpDemoKeys), well after the first frame.
	demoProfile := func(name string) chat.Profile {
		return chat.Profile{Dir: filepath.Join(dir, name), Device: "demo",
			StoreOptions: storage.ClientOptions{Synchronous: storage.SyncNormal},
			Prefs: chat.Preferences{Logger: logger.With("part", name), AllowOffline: true, StayUp: true,
				OneTimeKeys: demoFirstKeys}}
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
	d.botCtx, d.cancel, d.logger = botCtx, cancel, logger
	return d, nil
}

// Backend is what the demo's UI shows: the person's controller, whose first contact
// list starts the echo (greet). The UI asks for that list right before the frame that
// shows the conversation with echo, so the greeting does not share the CPU with the
// UI's start.
func (d *DemoEnv) Backend() ui.Backend { return demoBackend{d.Me, d} }

type demoBackend struct {
	*chat.Controller
	d *DemoEnv
}

// TakeRecoveryCode is empty: the demo's profiles are thrown away on exit, and there is
// nothing to recover (the UI shows a new account's code once otherwise).
func (b demoBackend) TakeRecoveryCode() string { return "" }

func (b demoBackend) Contacts(ctx context.Context) ([]chat.Contact, error) {
	list, err := b.Controller.Contacts(ctx)
	b.d.greet()
	return list, err
}

// greet starts the echo bot once: the demo script's greeting, then answering every
// message; demoTopUpDelay after the greeting it tops up both profiles' prekeys
// (topUpDemoKeys).
func (d *DemoEnv) greet() {
	d.greetOnce.Do(func() {
		if d.onGreet != nil {
			d.onGreet()
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for _, line := range assets.DemoScript() {
				if _, err := d.Echo.Send(d.botCtx, DemoUser, line); err != nil {
					d.logger.Warn("echo: greeting", "err", err)
					break
				}
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				t := time.NewTimer(d.topUpDelay)
				defer t.Stop()
				select {
				case <-d.botCtx.Done():
					return
				case <-t.C:
				}
				d.topUpDemoKeys(d.botCtx, d.logger)
			}()
			runEcho(d.botCtx, d.Echo, d.echoFiles, d.logger)
		}()
	})
}

// demoFirstKeys is how many one-time prekeys of each kind a demo profile publishes
// before the first frame (issue 14: 400 prekeys made, signed, stored and verified were
// most of the CPU the first frame waited for). Each profile's bundle is fetched once, by
// the other.
const demoFirstKeys = 4

// demoTopUpDelay is how long after the greeting the demo's profiles are topped up to
// chat.DefaultOneTimeKeys: well after the first frame, while the person reads.
const demoTopUpDelay = 2 * time.Second

// topUpDemoKeys brings both profiles to chat.DefaultOneTimeKeys one-time prekeys of each
// kind on the relay, one after the other (the UI keeps the other core): the demo then
// holds what a real profile holds. Their later rotations keep at least demoFirstKeys.
func (d *DemoEnv) topUpDemoKeys(ctx context.Context, logger *slog.Logger) {
	for _, c := range []*chat.Controller{d.Me, d.Echo} {
		if err := c.RotateKeys(ctx, chat.DefaultOneTimeKeys); err != nil && ctx.Err() == nil {
			logger.Warn("demo: topping up prekeys", "err", err)
		}
	}
	close(d.toppedUp)
}

// runEcho answers every message with the text reversed and the session's message
// number, through the echo's own ratchet session, and sends every file back (up to
// echoFileLimit) so the demo shows a file arriving too.
func runEcho(ctx context.Context, c *chat.Controller, files string, logger *slog.Logger) {
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
			if ev.Message.Attachment != nil {
				echoFile(ctx, c, ev.Contact, *ev.Message, files, logger)
				continue
			}
			reply := echoReply(ctx, c, ev.Contact, ev.Message.Text, counts)
			if _, err := c.Send(ctx, ev.Contact, reply); err != nil {
				logger.Warn("echo: reply", "err", err)
			}
		}
	}
}

// echoFileLimit is the largest file the demo's echo sends back: the demo is a tour,
// and a bigger file would keep the echo from answering while it travels twice.
const echoFileLimit = 16 << 20

// echoFile downloads the file of m and sends it back to contact, or says why not.
func echoFile(ctx context.Context, c *chat.Controller, contact string, m chat.Message, dir string, logger *slog.Logger) {
	a := m.Attachment
	name := chat.SafeFileName(a.FileName)
	say := func(text string) {
		if _, err := c.Send(ctx, contact, text); err != nil {
			logger.Warn("echo: reply", "err", err)
		}
	}
	if a.Size > echoFileLimit {
		say(fmt.Sprintf("I got your file %s (%s). I send back files up to %s.", name, chat.FormatSize(a.Size), chat.FormatSize(echoFileLimit)))
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		logger.Warn("echo: files directory", "err", err)
		say("I could not keep your file: " + chat.Sentence(err))
		return
	}
	path, err := c.Download(ctx, m.ID, dir, nil)
	if err != nil {
		logger.Warn("echo: download", "message", m.ID, "err", err)
		say("I could not fetch your file " + name + ": " + chat.Sentence(err))
		return
	}
	if _, err := c.SendFile(ctx, contact, path, "your file back: sealed with a fresh key, uploaded once, checked on arrival", nil); err != nil {
		logger.Warn("echo: send file", "message", m.ID, "err", err)
		say("I could not send your file " + name + " back: " + chat.Sentence(err))
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
	d.greetOnce.Do(func() {}) // no bot starts after Close
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
