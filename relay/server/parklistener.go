package server

// Idle TLS connections park below TLS. Over plain ws:// the read loop waits for the
// socket to become readable on a shallow stack (waitread_unix.go) and only then enters
// gorilla's read path. Over TLS it could not: a TLS record may hold more than the read
// buffer, so decrypted data (or a whole record read ahead) can wait inside tls.Conn
// while the socket is quiet, and the loop had to park inside tls.Conn.Read on a stack
// twice as deep.
//
// A parkConn sits under tls.Conn and lets the read loop ask tls.Conn, without touching
// the socket, whether it holds anything: while probing, a Read that would have to go
// to the socket fails at once with a temporary error (which crypto/tls does not keep:
// only permanent errors stick to a tls.Conn). If the probe yields nothing, tls.Conn
// holds no plaintext and at most part of a record, whose rest must come from the
// socket: the loop parks on the socket's readiness, exactly as over ws://.

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// ParkingListener wraps ln so that the relay can park idle connections on their
// sockets. Serve TLS through tls.NewListener(ParkingListener(ln), conf) (or set an
// httptest.Server's Listener to it before StartTLS): each idle wss:// connection then
// costs about 4 KB less (a shallow parked stack instead of one inside crypto/tls).
// Without it the relay still works, parking TLS connections inside tls.Conn.Read.
// Plain connections gain nothing from it and lose nothing.
func ParkingListener(ln net.Listener) net.Listener { return &parkListener{Listener: ln} }

type parkListener struct{ net.Listener }

func (l *parkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &parkConn{Conn: c}, nil
}

// parkConn is a connection under tls.Conn. probing is set and read only by the
// connection's read loop (tls.Conn.Read runs on it), so it needs no lock.
type parkConn struct {
	net.Conn
	probing bool
}

// errWouldBlock is what a probing Read returns: a temporary net.Error, so tls.Conn
// returns it without recording it as the connection's error.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "relay: probe: no data buffered" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

func (c *parkConn) Read(b []byte) (int, error) {
	if c.probing {
		return 0, errWouldBlock
	}
	return c.Conn.Read(b)
}

// SyscallConn and CloseWrite pass through (the read waiter, the lingering close).
func (c *parkConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("relay: connection has no file descriptor")
	}
	return sc.SyscallConn()
}

func (c *parkConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// tlsQuiet reports whether tls.Conn holds nothing the read loop could read now, so
// that it may park on the socket. It fills c.br with whatever tls.Conn holds (without
// reading the socket) and consumes the probe's error, so the next real read starts
// clean. Any other error (a close_notify or a bad record, which tls.Conn keeps and
// returns again) is left for the real read to report at once: the loop does not park.
// Call it only with c.br empty, at a frame boundary.
//
//go:noinline
func (c *conn) tlsQuiet() bool {
	c.park.probing = true
	_, err := c.br.Peek(c.br.Size()) // fills until full or an error, then clears that error
	c.park.probing = false
	return c.br.Buffered() == 0 && err == errWouldBlock
}

// readWaiterFor is the read waiter for a hijacked connection: on its socket for a
// plain connection, and below TLS for a tls.Conn over a parkConn (park is then that
// parkConn). A tls.Conn over anything else gets none: its loop parks inside TLS.
func readWaiterFor(nc net.Conn) (*readWaiter, *parkConn) {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return newReadWaiter(nc), nil
	}
	pc, ok := tc.NetConn().(*parkConn)
	if !ok {
		return nil, nil
	}
	w := newReadWaiter(pc)
	if w == nil {
		return nil, nil
	}
	return w, pc
}
