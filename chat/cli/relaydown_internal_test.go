package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"pfschat/chat"
)

// The sentence of a relay that could not be reached names its address once and the
// dial's reason in words, whatever the dial's error repeats.
func TestUnreachableRelaySentence(t *testing.T) {
	const url = "wss://relay.example:7878/v2/ws"
	dial := func(err error) error {
		return fmt.Errorf("%w: %s: relay: dialing %s: %w", chat.ErrOffline, url, url, &net.OpError{Op: "dial", Net: "tcp", Err: err})
	}
	advice := "\nis it running? start one with 'pfschat relay', or pass --relay URL"
	for _, tc := range []struct {
		err  error
		want string
	}{
		{dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)), "cannot reach the relay at " + url + " (connection refused)" + advice},
		{dial(&net.DNSError{Err: "no such host", Name: "relay.example", IsNotFound: true}), "cannot reach the relay at " + url + " (no such host)" + advice},
		{dial(context.DeadlineExceeded), "cannot reach the relay at " + url + " (timed out)" + advice},
		{fmt.Errorf("%w: cannot start a session with bob while offline: %w", chat.ErrOffline, dial(os.NewSyscallError("connect", syscall.ECONNREFUSED))),
			"cannot reach the relay at " + url + " (connection refused): cannot start a session with bob while offline" + advice},
	} {
		if got := unreachableRelay(tc.err); got != tc.want {
			t.Errorf("unreachableRelay(%q)\n = %q\nwant %q", tc.err, got, tc.want)
		}
	}
}
