//go:build unix

package server

import (
	"net"
	"syscall"
)

// readWaiter parks the read loop until the socket has data, with a shallow stack:
// an idle connection then costs a small goroutine stack instead of one sized for
// gorilla's read path, which the runtime could not shrink.
type readWaiter struct {
	rc    syscall.RawConn
	b     [1]byte
	ready func(fd uintptr) bool // made once: a closure per wait would be garbage
}

func newReadWaiter(nc net.Conn) *readWaiter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &readWaiter{rc: rc}
	w.ready = w.peek
	return w
}

// wait returns once the socket is readable (data, EOF or an error), or when the read
// deadline passes. Errors are left for the real read to report.
func (w *readWaiter) wait() {
	w.rc.Read(w.ready)
}

func (w *readWaiter) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), w.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err == syscall.EAGAIN || err == syscall.EWOULDBLOCK {
		return false // not yet: park until the poller says readable
	}
	return true
}
