//go:build !linux

package relaytest

import (
	"context"
	"net"
	"time"
)

// DialStamped is a plain dial where the kernel's receive timestamps are not read.
func DialStamped(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Arrival is the zero time here: no receive timestamps on this platform.
func Arrival(net.Conn) time.Time { return time.Time{} }
