package cli

import (
	"flag"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"pfschat/relay/server"
	"pfschat/storage"
)

// abuseFlags are `pfschat relay`'s abuse-limit flags (PROTOCOL.md "Limits and abuse").
type abuseFlags struct {
	registration   *string
	trustedProxies *string
	connsPerAddr   *int
	maxConns       *int
	loginTimeout   *time.Duration
	messageTimeout *time.Duration
	regsPerHour    *int
	senderQuota    *int

	trusted []netip.Prefix
}

func (a *abuseFlags) register(fs *flag.FlagSet) {
	d := server.DefaultLimits
	a.registration = fs.String("registration", server.RegistrationOpen, "registration `policy`: open (anyone), invite (a code from pfschat relay invite) or closed")
	a.trustedProxies = fs.String("trusted-proxies", "", "comma-separated CIDR `prefixes` of load balancers whose PROXY v2 header names the client's address")
	a.connsPerAddr = fs.Int("max-conns-per-address", d.ConnectionsPerAddress, "open connections per IPv4 address or IPv6 /64 (0 = no limit)")
	a.maxConns = fs.Int("max-conns", 0, "open connections in total (0 = the descriptor limit, raised to its hard limit, less 256)")
	a.loginTimeout = fs.Duration("login-timeout", d.LoginTimeout, "close connections not logged in after this long")
	a.messageTimeout = fs.Duration("message-timeout", d.MessageTimeout, "close a connection whose message is not whole this long after its first frame (pings do not extend it)")
	a.regsPerHour = fs.Int("registrations-per-hour", d.RegistrationsPerHour, "registrations per source address an hour (0 = no limit)")
	a.senderQuota = fs.Int("sender-quota", server.DefaultSenderQuota, "one sender fills at most 1/N of a recipient's queue (0 = no quota)")
}

// apply checks the flags and sets them on the relay's limits and store options,
// after raising the descriptor limit. started logs the limits: called once the relay
// starts, so a refused start prints its error alone.
func (a *abuseFlags) apply(l *server.Limits, opts *storage.RelayOptions, log *slog.Logger) (started func(), err error) {
	switch *a.registration {
	case server.RegistrationOpen, server.RegistrationInvite, server.RegistrationClosed:
	default:
		return nil, usagef("--registration %q: want open, invite or closed", *a.registration)
	}
	if *a.connsPerAddr < 0 || *a.maxConns < 0 || *a.regsPerHour < 0 || *a.senderQuota < 0 || *a.loginTimeout <= 0 || *a.messageTimeout <= 0 {
		return nil, usagef("--max-conns-per-address, --max-conns, --registrations-per-hour and --sender-quota must not be negative, --login-timeout and --message-timeout must be positive")
	}
	if a.trusted, err = server.ParseTrustedProxies(*a.trustedProxies); err != nil {
		return nil, usagef("%v", err)
	}
	off := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	l.ConnectionsPerAddress = off(*a.connsPerAddr)
	l.RegistrationsPerHour = off(*a.regsPerHour)
	l.LoginTimeout = *a.loginTimeout
	l.MessageTimeout = *a.messageTimeout
	l.MaxConnections = *a.maxConns
	opts.SenderQuota = *a.senderQuota
	cur, max, raiseErr := raiseFileLimit()
	derived := l.MaxConnections == 0 // server.New derives it from the (now raised) descriptor limit
	return func() {
		if raiseErr != nil {
			log.Warn("could not raise the descriptor limit", "err", raiseErr)
		} else {
			log.Info("descriptor limit", "soft", cur, "hard", max)
		}
		if derived {
			log.Info("connection limit", "max_conns", "descriptor limit less 256")
		}
	}, nil
}

// listener wraps ln to read PROXY v2 headers from the trusted proxies.
func (a *abuseFlags) listener(ln net.Listener) net.Listener {
	if len(a.trusted) == 0 {
		return ln
	}
	return &server.ProxyListener{Listener: ln, Trusted: a.trusted}
}
