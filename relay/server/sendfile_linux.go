package server

import (
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendfileWorks: the writer sends blob runs with sendfile(2) on this system.
const sendfileWorks = true

// openRun gives a run its own descriptor of the blob file behind rc (a duplicate): the
// reader may close or replace its file while the run waits in the queue.
func openRun(rc syscall.RawConn, off, n int64) (*fileRun, error) {
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, &os.SyscallError{Syscall: "fcntl", Err: derr}
	}
	return &fileRun{f: os.NewFile(uintptr(fd), "blob run"), off: off, n: n}, nil
}

// sendRun writes head (the run's WebSocket frame header and blob chunk header), then
// the run's bytes, on the plain socket nc (w: its descriptor's waiter), the bytes by
// sendfile(2): from the page cache to the socket without a copy through the relay's
// memory. A file shorter than the run is found before anything is written
// (errShortBlobFile, sent false): the request can still be answered. After that, a
// failure may leave a cut frame, and the connection must end.
func sendRun(nc net.Conn, w *readWaiter, run *fileRun, head []byte) (sent bool, _ error) {
	sock := w.rc
	defer run.close()
	off, n := run.off, run.n
	if st, err := run.f.Stat(); err != nil || st.Size() < off+n {
		return false, errShortBlobFile
	}
	if _, err := nc.Write(head); err != nil {
		return true, err
	}
	rc, err := run.f.SyscallConn()
	if err != nil {
		return true, err
	}
	var werr error
	cerr := rc.Control(func(ffd uintptr) {
		serr := sock.Write(func(sfd uintptr) bool {
			for n > 0 {
				m, e := unix.Sendfile(int(sfd), int(ffd), &off, int(min(n, 1<<30)))
				if m > 0 {
					n -= int64(m)
				}
				switch {
				case e == unix.EINTR:
				case e == unix.EAGAIN:
					return false // the socket is full: wait for the poller
				case e != nil:
					werr = &os.SyscallError{Syscall: "sendfile", Err: e}
					return true
				case m == 0:
					werr = errShortBlobFile
					return true
				}
			}
			return true
		})
		if werr == nil {
			werr = serr
		}
	})
	if werr == nil {
		werr = cerr
	}
	return true, werr
}
