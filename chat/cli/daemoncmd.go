package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"pfschat/chat"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
)

// The daemon's entry in the command table. It is appended here, in a file of its own,
// so that the table in cli.go stays the other commands' (this file's init runs after
// cli.go's: the go tool hands a package's files to the compiler in name order).
func init() {
	commands = append(commands, command{
		name: "daemon", args: "[--http ADDR [--http-public]] [--no-read-receipts] [--download-dir DIR | --no-auto-download]",
		help: "hold the profile and serve JSON-RPC 2.0 on its socket (and HTTP + SSE) for devices and scripts",
		run:  cmdDaemon,
		flags: func(fs *flag.FlagSet) {
			fs.String("http", "", "also serve the HTTP API (POST /api/v1/rpc, GET /api/v1/events, GET /api/v1/check) on ADDR, loopback only unless --http-public")
			fs.Bool("http-public", false, "allow --http on an address that is not loopback (put TLS in front of it)")
			fs.String("http-host", "", "with --http: further Host headers the HTTP API answers to, each NAME:PORT exactly as a proxy forwards it, comma-separated")
			fs.Bool("no-read-receipts", false, "markRead does not tell the sender")
			fs.String("download-dir", defaultDownloadDir(), "where contacts' files are downloaded as they arrive")
			fs.Bool("no-auto-download", false, "download files only when a client calls download")
		},
	})
}

func programVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// cmdDaemon runs `pfschat daemon`: it unlocks the profile once, holds its lock and one
// relay connection, and serves the API until SIGINT or SIGTERM.
func cmdDaemon(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("unexpected arguments %q", args)
	}
	httpAddr := fs.Lookup("http").Value.String()
	public := fs.Lookup("http-public").Value.String() == "true"
	e.noReadReceipts = fs.Lookup("no-read-receipts").Value.String() == "true"
	downloadDir := fs.Lookup("download-dir").Value.String()
	if fs.Lookup("no-auto-download").Value.String() == "true" {
		downloadDir = ""
	} else if downloadDir == "" || !filepath.IsAbs(downloadDir) {
		abs, err := filepath.Abs(downloadDir)
		if downloadDir == "" || err != nil {
			return usagef("--download-dir: want a directory (or --no-auto-download)")
		}
		downloadDir = abs
	}
	if httpAddr != "" && !public {
		if err := checkLoopback(httpAddr); err != nil {
			return usagef("%v", err)
		}
	}
	// A daemon is a service: it logs to stderr (the journal under systemd) at info, or
	// everything with -v; never message contents or secrets.
	e.logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := e.profile()
	if err != nil {
		return err
	}
	sock, err := daemon.SocketPath(p.Dir)
	if err != nil {
		return err
	}
	// The HTTP port is taken before the profile is unlocked: one in use fails at once,
	// before anything says "serving".
	var ln net.Listener
	if httpAddr != "" {
		if ln, err = net.Listen("tcp", httpAddr); err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("--http %s: %w; another program listens there: stop it or pick another address", httpAddr, err)
			}
			return fmt.Errorf("--http %s: %w", httpAddr, err)
		}
		defer ln.Close() // the HTTP server's Shutdown closes it too
	}
	e.owner = profile.OwnerDaemon
	c, err := e.openStayingUp() // a daemon outlives relay outages: sends wait in the outbox
	if err != nil {
		return err
	}
	defer e.finish(c)
	o, err := serveOwner(c, sock, profile.OwnerDaemon, !e.noReadReceipts, downloadDir, p.Prefs.Logger)
	if err != nil {
		return err
	}
	defer o.close()
	fmt.Fprintf(e.stdout, "pfschat daemon: serving %s on %s\n", c.Me(), sock)
	if ln != nil {
		secretPath := daemon.SecretPath(sock)
		secret, err := daemon.NewSecret(secretPath)
		if err != nil {
			return err
		}
		defer os.Remove(secretPath)
		hosts := append(daemon.LoopbackHosts(ln.Addr().String()), httpAddr)
		for _, h := range strings.Split(fs.Lookup("http-host").Value.String(), ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
		hs := &http.Server{Handler: o.srv.HTTPHandler(secret, hosts), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		defer func() {
			o.close() // ends the event streams, so Shutdown need not wait for them
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			hs.Shutdown(ctx)
			cancel()
		}()
		fmt.Fprintf(e.stdout, "pfschat daemon: HTTP API on http://%s/api/v1/ (bearer secret in %s)\n", ln.Addr(), secretPath)
	}
	// A relay connection that ended for good (the identity was replaced on another
	// device, the relay presents another key) ends the daemon as it would its start:
	// exit 1, saying why. Serving on would have told every command the relay is
	// unreachable for now and its message would go out later.
	defer o.first.Close()
	events := o.first.C()
	for {
		select {
		case <-e.ctx.Done():
			fmt.Fprintln(e.stderr, "pfschat daemon: stopping")
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil // the controller closed; the stop follows
				continue
			}
			if err := connectionEnded(ev); err != nil {
				return err
			}
		}
	}
}

// connectionEnded is the error of a relay connection that ended for good (ev says the
// controller stopped trying: the identity was replaced on another device, or the relay
// presents another key), else nil.
func connectionEnded(ev chat.Event) error {
	var rk *chat.RelayKeyChangedError
	if err := ev.State.Err; ev.Kind == chat.ConnectionChanged && ev.State.Status == chat.Offline &&
		(errors.Is(err, chat.ErrIdentityReplaced) || errors.As(err, &rk)) {
		return err
	}
	return nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %q: want HOST:PORT (%v)", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--http %s is not a loopback address; the HTTP API would be reachable from the network. Pass --http-public to mean it (and put TLS in front)", addr)
}

// owner is a running API server on an owner's controller.
type owner struct {
	hub *daemon.Hub
	srv *daemon.Server
	// first is the owner's own reader, subscribed before the hub read an event: the
	// terminal UI's events, or the daemon's watch for a connection that ended for good.
	first *daemon.Sub
}

// serveOwner serves c's API on the socket; the caller holds the profile (c came from
// Profile.Open, which took the lock). downloadDir: where contacts' files are fetched
// as they arrive ("": the UI, which has its own policy, or --no-auto-download).
//
// The hub starts reading c's events only once the socket listens, and with the UI's
// subscription already in place: a UI left reading c.Events() beside a hub after a
// failed Listen got every other event, and events read before the UI subscribed
// (Initialize's "online" among them) were lost.
func serveOwner(c *chat.Controller, sock string, kind profile.OwnerKind, readReceipts bool, downloadDir string, logger *slog.Logger) (*owner, error) {
	ln, err := daemon.Listen(sock)
	if err != nil {
		return nil, err
	}
	o := &owner{}
	o.hub, o.first = daemon.NewHubFor(c.Events())
	o.srv = daemon.New(daemon.Config{Controller: c, Hub: o.hub, Owner: kind, Version: programVersion(), ReadReceipts: readReceipts, DownloadDir: downloadDir,
		ResumeUploads: kind == profile.OwnerDaemon, Logger: logger})
	o.srv.Serve(ln)
	return o, nil
}

func (o *owner) close() { o.srv.Close() } // safe to call twice

// errOwnerGone: the owner answered on the socket but the connection broke.
var errOwnerGone = errors.New("the pfschat owner of this profile went away")
