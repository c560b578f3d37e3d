package relaytest

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
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

// cmsgHeader is the size of a control message's header (struct cmsghdr) on this
// platform, and timespecSize that of the struct timespec SCM_TIMESTAMPNS carries.
const (
	cmsgHeader   = int(unsafe.Sizeof(syscall.Cmsghdr{}))
	timespecSize = int(unsafe.Sizeof(syscall.Timespec{}))
)

// DialStamped dials a TCP connection with receive timestamps on, for a
// websocket.Dialer's NetDialContext. Where the socket
// refuses them the plain connection is returned, and Arrival reports no time.
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
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
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
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), p, c.oob[:], 0)
		return rerr != syscall.EAGAIN
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
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < cmsgHeader || l > len(oob) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS && l >= cmsgHeader+timespecSize {
			sec := int64(binary.NativeEndian.Uint64(oob[cmsgHeader:]))
			nsec := int64(binary.NativeEndian.Uint64(oob[cmsgHeader+8:]))
			return sec*1e9 + nsec
		}
		// control messages are aligned to the word size
		next := (l + int(unsafe.Sizeof(uintptr(0))) - 1) &^ (int(unsafe.Sizeof(uintptr(0))) - 1)
		if next >= len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}

// Arrival is the kernel's receive time of the bytes the last read on c returned, for
// a connection DialStamped made (a LoadConn's: see Arrived); the zero time where the platform or
// socket gives none, before the first read, or when the last read carried no time.
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
