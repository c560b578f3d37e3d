package server

import (
	"net"
	"net/netip"
	"sync"
)

// CapListener bounds the TCP connections a listener keeps open, from accept on: per
// address (an IPv4 address or an IPv6 /64, as connections_per_address counts) and in
// all. The relay's own caps count WebSocket connections once they are upgraded; a
// connection that never finishes its HTTP request (or TLS handshake) holds a
// descriptor until the 10 s header deadline, and thousands of those from one address
// exhausted the descriptors before any cap applied. Over a cap, an accepted connection
// is closed at once, before a byte is read. Connections from exempt prefixes (trusted
// proxies, whose clients' addresses come later in a PROXY header) count only in all.
// perAddress or total ≤ 0: no such cap.
func CapListener(ln net.Listener, perAddress, total int, exempt []netip.Prefix) net.Listener {
	return &capListener{Listener: ln, perAddr: perAddress, total: total, exempt: exempt, open: make(map[string]int)}
}

type capListener struct {
	net.Listener
	perAddr, total int
	exempt         []netip.Prefix

	mu   sync.Mutex
	open map[string]int // per address key; "" counts all
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addressKey(c.RemoteAddr().String())
		if inPrefixes(c.RemoteAddr(), l.exempt) {
			key = ""
		}
		if !l.take(key) {
			c.Close()
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			// Embedded, so that every method of a TCP connection the relay uses (its
			// descriptor for the read waiter, CloseWrite, writev) passes through.
			return &cappedTCPConn{TCPConn: tc, slot: capSlot{l: l, key: key}}, nil
		}
		return &cappedConn{Conn: c, slot: capSlot{l: l, key: key}}, nil
	}
}

// take counts a connection from key in, unless a cap is reached.
func (l *capListener) take(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.open[""] >= l.total {
		return false
	}
	if key != "" && l.perAddr > 0 && l.open[key] >= l.perAddr {
		return false
	}
	l.open[""]++
	if key != "" {
		l.open[key]++
	}
	return true
}

func (l *capListener) give(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open[""]--
	if key != "" {
		if l.open[key]--; l.open[key] <= 0 {
			delete(l.open, key)
		}
	}
}

// capSlot is a connection's place under the caps, given back once however often its
// connection is closed.
type capSlot struct {
	l    *capListener
	key  string
	once sync.Once
}

func (s *capSlot) release() { s.once.Do(func() { s.l.give(s.key) }) }

type cappedTCPConn struct {
	*net.TCPConn
	slot capSlot
}

func (c *cappedTCPConn) Close() error {
	err := c.TCPConn.Close()
	c.slot.release()
	return err
}

type cappedConn struct {
	net.Conn
	slot capSlot
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.slot.release()
	return err
}
