package relaytest

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stampedConn is a TCP connection whose reads also take the kernel's receive time of
// the bytes they return (SO_TIMESTAMPNS: the time the last segment read arrived at the
// socket). A load run's latency measured to that time leaves out how long the load
// generator's own goroutines waited for a CPU before they read: on a machine whose
// cores the generator shares with the server it measures, that wait is the
// generator's tail, not the server's.
type stampedConn struct {
	*net.TCPConn
	rc      syscall.RawConn
	oob     [64]byte
	arrived atomic.Int64 // Unix nanoseconds of the last read's segment; 0 before one
}

// cmsgHeader is the size of a control message's header (struct cmsghdr).
const cmsgHeader = unix.SizeofCmsghdr

// DialStamped dials a TCP connection with receive timestamps on, for a
// websocket.Dialer's NetDialContext. Where the socket refuses them the plain
// connection is returned, and Arrival reports no time.
func DialStamped(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c, nil
	}
	return &stampedConn{TCPConn: tc, rc: rc}, nil
}

func (c *stampedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n, oobn int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), p, c.oob[:], 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: rerr}
	}
	if n == 0 {
		return 0, io.EOF
	}
	// A read without a time (the kernel turns receive timestamps on for the whole
	// stack lazily, after the first socket asks for them) reports none, not the
	// previous read's.
	c.arrived.Store(receiveTime(c.oob[:oobn]))
	return n, nil
}

// receiveTime finds SCM_TIMESTAMPNS in a recvmsg's control data, in Unix nanoseconds
// (0 if absent).
func receiveTime(oob []byte) int64 {
	for len(oob) >= cmsgHeader {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			return (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano()
		}
		oob = rest
	}
	return 0
}

// Arrival is the kernel's receive time of the bytes the last read on c returned, for
// a connection DialStamped made (a LoadConn's: see Arrived). It is the zero time where
// the platform or socket gives none, before the first read, and when the last read
// carried no time.
func Arrival(c net.Conn) time.Time {
	s, ok := c.(*stampedConn)
	if !ok {
		return time.Time{}
	}
	if t := s.arrived.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Time{}
}
