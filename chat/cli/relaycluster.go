package cli

// `pfschat relay --nats URL[,URL…]`: a relay node whose state is in NATS JetStream
// (package relay/cluster), so that any number of nodes serve the same users. README
// "Run a relay cluster".

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/cluster"
	"pfschat/relay/server"
	"pfschat/storage"
)

// DefaultNATSReplicas is the replication factor of the relay's streams and buckets
// unless --nats-replicas says otherwise: R3, so that an accepted message is on a
// quorum of three servers' disks and one server may die. R1 is a choice made on
// purpose (it warns): its durability is that one server's sync setting.
const DefaultNATSReplicas = 3

// relayKeyFileHelp is the help of --relay-key-file, the relay key that seals the
// relay's secrets: in --db (README "The relay's key at rest") or in JetStream.
const relayKeyFileHelp = "the `file` holding the relay key (64 hex digits) that seals the relay's secrets (its identity key) in --db or, with --nats, in JetStream, the same on every node (or set $PFSCHAT_RELAY_KEY; make one with pfschat relay new-key-file FILE)"

// clusterFlags are the flags of a relay node on JetStream, and --relay-key-file.
type clusterFlags struct {
	nats     *string
	creds    *string
	replicas *int
	keyFile  *string
	prefix   *string
}

func (c *clusterFlags) register(fs *flag.FlagSet) {
	c.registerAs(fs, "run a relay cluster node: its state is in NATS JetStream")
}

// registerAs registers the flags with --nats described as what it does for the
// command: it runs a node (pfschat relay), or finds the cluster's state (relay invite).
func (c *clusterFlags) registerAs(fs *flag.FlagSet, nats string) {
	c.nats = fs.String("nats", "", nats+" at these comma-separated `URLs` (nats://host:4222,…) instead of --db (README \"Run a relay cluster\")")
	c.creds = fs.String("nats-creds", "", "with --nats: the NATS credentials `file` (user JWT and nkey seed; chmod 600)")
	c.replicas = fs.Int("nats-replicas", DefaultNATSReplicas, "with --nats: replicas of the relay's streams and buckets, 1, 3 or 5 (R3 survives one NATS server's loss; R1 is one server's disk)")
	c.keyFile = fs.String("relay-key-file", "", relayKeyFileHelp)
	c.prefix = fs.String("nats-prefix", "PFSCHAT", "with --nats: the name prefix of the relay's streams, buckets and subjects (several relays may share one NATS system)")
}

// enabled reports whether the relay runs on JetStream.
func (c *clusterFlags) enabled() bool { return *c.nats != "" }

// sqliteOnlyFlags are the flags of the single-node SQLite relay that mean nothing to a
// node on JetStream; given with --nats they are refused rather than ignored.
var sqliteOnlyFlags = []string{"db", "synchronous", "min-free-mib", "disk-reserve-mib"}

// clusterOnlyFlags mean nothing without --nats.
var clusterOnlyFlags = []string{"nats-creds", "nats-replicas", "nats-prefix"}

// check refuses flags that contradict each other, and checks the cluster flags' values
// (nothing is dialled or read yet but the credentials file's mode). It returns the
// NATS URLs.
func (c *clusterFlags) check(fs *flag.FlagSet) ([]string, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !c.enabled() {
		for _, name := range clusterOnlyFlags {
			if set[name] {
				return nil, usagef("--%s is for a relay cluster node: give --nats URL too, or drop it", name)
			}
		}
		if set["nats"] {
			return nil, usagef("--nats is empty: give the NATS servers' URLs (nats://host:4222,…), or drop it for the SQLite relay")
		}
		return nil, nil
	}
	for _, name := range sqliteOnlyFlags {
		if set[name] {
			return nil, usagef("--%s is for the single-node SQLite relay; with --nats the relay's state is in JetStream: drop --%s", name, name)
		}
	}
	urls, err := parseNATSURLs(*c.nats)
	if err != nil {
		return nil, err
	}
	switch r := *c.replicas; r {
	case 1, 3, 5:
	case 2, 4:
		return nil, usagef("--nats-replicas %d: an even number of replicas survives no more server losses than %d and waits for more of them; use 1, 3 or 5", r, r-1)
	default:
		return nil, usagef("--nats-replicas %d: use 1, 3 or 5", r)
	}
	if *c.creds != "" {
		if err := checkSecretFile(*c.creds, "--nats-creds"); err != nil {
			return nil, err
		}
	}
	return urls, nil
}

// parseNATSURLs splits --nats into its URLs and checks each: nats://, tls://, ws:// or
// wss://, with a host.
func parseNATSURLs(raw string) ([]string, error) {
	var urls []string
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			shown := strings.Split(raw, ",")
			for i := range shown {
				shown[i] = redactUserInfo(shown[i])
			}
			return nil, usagef("--nats %q has an empty entry: separate the NATS servers' URLs by single commas", strings.Join(shown, ","))
		}
		u, err := url.Parse(part)
		if err != nil || u.Host == "" {
			return nil, usagef("--nats: %q is not a NATS server URL (want nats://host:4222)", redactUserInfo(part))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, usagef("--nats: %q: the scheme must be nats://, tls://, ws:// or wss://", redactUserInfo(part))
		}
		if u.User != nil {
			return nil, usagef("--nats: %q has a user or password in it, which every user of this machine can read in the process list: use --nats-creds FILE", redactUserInfo(part))
		}
		urls = append(urls, part)
	}
	return urls, nil
}

// redactUserInfo hides what comes before the last '@' of a URL's authority, the user
// information: a password, or a token alone (nats://TOKEN@host), which url.Redacted
// keeps. It works on text that does not parse as a URL too.
func redactUserInfo(raw string) string {
	rest, scheme := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return raw
	}
	return scheme + "xxxxx" + rest[at:]
}

// checkSecretFile refuses a secret file that is missing, not a regular file, or
// readable by group or others.
func checkSecretFile(path, flagName string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file", flagName, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s %s is readable or writable by group or others (mode %04o), and it holds a secret; run chmod 600 %s", flagName, path, fi.Mode().Perm(), path)
	}
	return nil
}

// clusterNode is what a relay node on JetStream runs on: the NATS connection and the
// queue, hub, directory and blob store over it (cluster.Node).
type clusterNode struct {
	node     *cluster.Node
	urls     []string
	replicas int
}

// openClusterNode reads the seal key, connects to NATS and opens the relay's streams
// and buckets (made on first use). A JetStream without the relay's key makes a new
// one only with init, so that a node pointed at the wrong NATS system does not start
// as a new relay.
func openClusterNode(ctx context.Context, f clusterFlags, urls []string, storeOpts storage.RelayOptions, init bool, stderr io.Writer, log *slog.Logger) (*clusterNode, error) {
	seal, err := cluster.LoadSealKey(*f.keyFile)
	if err != nil {
		return nil, err
	}
	if *f.replicas == 1 {
		log.Warn("--nats-replicas 1: an accepted message is on one NATS server's disk only; unless that server runs with sync_interval: always, a power cut loses what it had not synced yet (README: Run a relay cluster)")
	}
	node, err := waitForJetStream(ctx, urls, stderr, log, func(ctx context.Context) (*cluster.Node, error) {
		conn, err := cluster.Connect(ctx, cluster.Options{URLs: urls, CredsFile: *f.creds, Replicas: *f.replicas, Prefix: *f.prefix})
		if err != nil {
			return nil, natsConnectError(err, *f.creds)
		}
		node, err := cluster.OpenNode(ctx, conn, cluster.NodeOptions{SealKey: seal, MaxPerRecipient: storeOpts.MaxQueueCount,
			Queue: cluster.QueueOptions{MaxBytesPerRecipient: storeOpts.MaxQueueBytes, SenderQuota: storeOpts.SenderQuota,
				Shards: queueShards(*f.replicas)}})
		if err != nil {
			conn.Close()
			return nil, err
		}
		return node, nil
	})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	has, err := node.HasRelayKey(cctx)
	if err != nil {
		node.Close()
		return nil, fmt.Errorf("reading the relay key from JetStream: %w", err)
	}
	if !has && !init {
		node.Close()
		return nil, fmt.Errorf("JetStream at %s (prefix %s) holds no relay key. Starting would make a new relay with a new key, which every client of an "+
			"existing relay refuses: if this node should join one, check --nats and --nats-prefix; pass --init to make a new relay there on purpose (once, on one node)",
			strings.Join(urls, ","), *f.prefix)
	}
	return &clusterNode{node: node, urls: urls, replicas: *f.replicas}, nil
}

// jetStreamRetry is how often a node that waits for its JetStream cluster tries again.
const jetStreamRetry = 2 * time.Second

// jetStreamSlow is how long a first try may take before the node says it is waiting: a
// node starts in well under a second, but a try can take its whole 30 s when the
// servers answer some requests and drop others (a leader that has not yet noticed it
// lost its quorum).
const jetStreamSlow = 5 * time.Second

// waitForJetStream runs open (each try within 30 s) until it succeeds, fails for good,
// or ctx ends. While the NATS servers answer but their JetStream cluster cannot serve
// yet (cluster.ErrNotReady: servers restarted together, the relay first), it waits:
// exiting would only have the service manager start it again into the same state. It
// says so on stderr and in the log, again whenever the reason changes and every
// minute.
func waitForJetStream(ctx context.Context, urls []string, stderr io.Writer, log *slog.Logger, open func(context.Context) (*cluster.Node, error)) (*cluster.Node, error) {
	var said string
	var saidAt time.Time
	for {
		// Until something was said: a try that takes long says so while it runs.
		var slow *time.Timer
		slowSaid := make(chan struct{})
		if said == "" {
			slow = time.AfterFunc(jetStreamSlow, func() {
				defer close(slowSaid)
				fmt.Fprintf(stderr, "pfschat relay: waiting for JetStream at %s: no answer within %v yet; still trying (stop with Ctrl+C)\n",
					strings.Join(urls, ","), jetStreamSlow)
				log.Warn("waiting for JetStream: no answer yet", "after", jetStreamSlow)
			})
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		node, err := open(octx)
		cancel()
		if slow != nil && !slow.Stop() {
			<-slowSaid // its line is out before any other
			said = "no answer yet"
		}
		if err == nil {
			if said != "" {
				fmt.Fprintln(stderr, "pfschat relay: JetStream is ready")
				log.Info("JetStream is ready")
			}
			return node, nil
		}
		if !errors.Is(err, cluster.ErrNotReady) || ctx.Err() != nil {
			if said != "" && ctx.Err() != nil {
				return nil, fmt.Errorf("stopped while waiting for JetStream: %w", err)
			}
			return nil, err
		}
		if reason := err.Error(); reason != said || time.Since(saidAt) >= time.Minute {
			fmt.Fprintf(stderr, "pfschat relay: waiting for JetStream at %s, trying again every %v (stop with Ctrl+C): %v\n",
				strings.Join(urls, ","), jetStreamRetry, err)
			log.Warn("waiting for JetStream", "err", err)
			said, saidAt = reason, time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped while waiting for JetStream: %w", err)
		case <-time.After(jetStreamRetry):
		}
	}
}

// configure puts the node's stores into the server's configuration.
func (n *clusterNode) configure(cfg *server.Config) { n.node.Configure(cfg) }

// handlers wrap the relay's public handler (/healthz) and admin handler (/healthz,
// /metrics) with the node's JetStream state.
func (n *clusterNode) handlers(public, admin http.Handler) (http.Handler, http.Handler) {
	return n.node.PublicHandler(public), n.node.AdminHandler(admin)
}

// describe is the start banner's line on where the relay's state is.
func (n *clusterNode) describe() string {
	return fmt.Sprintf("state: NATS JetStream at %s, R%d", strings.Join(n.urls, ","), n.replicas)
}

func (n *clusterNode) close() error {
	n.node.Close()
	return nil
}

// openClusterDirectory connects to NATS and opens the relay cluster's directory alone
// (pfschat relay invite): the relay must have run there already.
func openClusterDirectory(ctx context.Context, f clusterFlags, urls []string) (*cluster.Directory, func(), error) {
	seal, err := cluster.LoadSealKey(*f.keyFile)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := cluster.Connect(cctx, cluster.Options{URLs: urls, CredsFile: *f.creds, Replicas: *f.replicas, Prefix: *f.prefix})
	if err != nil {
		return nil, nil, natsConnectError(err, *f.creds)
	}
	// Look before NewDirectory, which would make the bucket.
	noRelay := fmt.Errorf("JetStream at %s (prefix %s) holds no relay: start pfschat relay --nats there first, or check --nats and --nats-prefix", strings.Join(urls, ","), *f.prefix)
	if _, err := conn.JetStream().KeyValue(cctx, *f.prefix+"_dir"); err != nil {
		conn.Close()
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, nil, noRelay
		}
		return nil, nil, fmt.Errorf("reading JetStream: %w", err)
	}
	dir, err := cluster.NewDirectory(cctx, conn, cluster.DirOptions{SealKey: seal})
	if err == nil {
		var has bool
		if has, err = server.HasRelayKey(cctx, dir); err == nil && !has {
			err = noRelay
		}
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return dir, conn.Close, nil
}

// queueShards is how many streams the queue is split into: at R>1 three, so the
// streams' leaders spread over a three-server cluster instead of one server's leader
// taking every write (README: Run a relay cluster). Fixed when the queue is made.
func queueShards(replicas int) int {
	if replicas > 1 {
		return 3
	}
	return 1
}

// natsConnectError says what to do when the NATS servers refuse the relay's login:
// without --nats-creds (an operator-mode system wants the relay user's credentials),
// or with credentials they do not know.
func natsConnectError(err error, creds string) error {
	if errors.Is(err, nats.ErrAuthorization) {
		if creds == "" {
			return fmt.Errorf("connecting to NATS: the servers want credentials: give the relay user's with --nats-creds FILE (README \"Run a relay cluster\"): %w", err)
		}
		return fmt.Errorf("connecting to NATS: the servers refused the credentials in %s (--nats-creds): give the relay user's, of an account in the servers' auth.conf: %w", creds, err)
	}
	return fmt.Errorf("connecting to NATS: %w", err)
}
