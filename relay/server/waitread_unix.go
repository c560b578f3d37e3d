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
	rc     syscall.RawConn
	b      [1]byte
	ready  func(fd uintptr) bool // made once: a closure per wait would be garbage
	polled bool                  // this wait found nothing and parked on the poller

	// tryWrite's, made and used by the writer role's holder only
	write func(fd uintptr)
	wb    []byte
	wn    int
	werr  error
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
	w.polled = false
	w.rc.Read(w.ready)
}

// peek looks once, without reading, whether the socket has something. Woken by the
// poller after that, it does not look again: the read that follows finds out, and a
// second look cost every waited-for frame a system call (a rare spurious wake-up only
// parks that read deeper, inside gorilla's read path).
func (w *readWaiter) peek(fd uintptr) bool {
	if w.polled {
		return true
	}
	_, _, err := syscall.Recvfrom(int(fd), w.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err == syscall.EAGAIN || err == syscall.EWOULDBLOCK {
		w.polled = true
		return false // not yet: park until the poller says readable
	}
	return true
}

// tryWrite writes what the socket takes now without waiting: n bytes of b went out;
// err is nil when the socket took all of b or would have blocked, else the write's
// error. Only the holder of the connection's writer role calls it (the committer's
// answer writer, see conn.writeInline), so the fields it uses need no lock.
func (w *readWaiter) tryWrite(b []byte) (n int, err error) {
	if w.write == nil {
		w.write = w.writeNow
	}
	w.wb, w.wn, w.werr = b, 0, nil
	// Control, not Write: Write would wait for the poller and refuse once a write
	// deadline set for an earlier blocking write has passed; this write never waits.
	rerr := w.rc.Control(w.write)
	n, err = w.wn, w.werr
	w.wb, w.werr = nil, nil
	if err == nil && rerr != nil {
		err = rerr
	}
	return n, err
}

func (w *readWaiter) writeNow(fd uintptr) {
	for w.wn < len(w.wb) {
		m, e := syscall.Write(int(fd), w.wb[w.wn:])
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN || e == syscall.EWOULDBLOCK:
			return // full: the rest is left to a writer goroutine
		case e != nil:
			w.werr = e
			return
		}
		w.wn += m
	}
}
