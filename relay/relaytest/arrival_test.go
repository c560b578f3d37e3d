package relaytest

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestArrivalIsTheKernelsReceiveTime: a read on a stamped connection reports when its
// bytes reached the socket: after the peer's write began and before the read returned,
// and never an earlier read's time.
func TestArrivalIsTheKernelsReceiveTime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("receive timestamps are read on Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := DialStamped(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	if !Arrival(c).IsZero() {
		t.Fatal("an arrival before any read")
	}
	if _, ok := c.(*stampedConn); !ok {
		t.Fatalf("DialStamped returned a %T, not a stamped connection", c)
	}
	// The kernel switches receive timestamps on and off for the whole stack lazily (a
	// static key flipped by deferred work, counted over the sockets that ask; the
	// previous test's closing socket can flip it off for a moment), so a segment may
	// carry none: exchange bytes until one does, for at most ten seconds. After that, a
	// read without a time must report none (never an earlier read's), and one with a
	// time must place it between the write and the read.
	buf := make([]byte, 16)
	for deadline := time.Now().Add(10 * time.Second); Arrival(c).IsZero(); {
		if time.Now().After(deadline) {
			t.Fatal("no read carried a receive time within ten seconds")
		}
		if _, err := peer.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			t.Fatal(err)
		}
	}
	var lastRead time.Time
	stamped := 0
	for i := 0; i < 40; i++ {
		wrote := time.Now()
		if _, err := peer.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:5]); err != nil {
			t.Fatal(err)
		}
		read := time.Now()
		at := Arrival(c)
		if at.IsZero() {
			continue
		}
		stamped++
		if at.Before(wrote) || at.After(read) {
			t.Fatalf("read %d: arrival %v outside [write %v, read %v]", i, at, wrote, read)
		}
		if at.Before(lastRead) {
			t.Fatalf("read %d: arrival %v before the previous read returned (%v)", i, at, lastRead)
		}
		lastRead = read
	}
	if stamped == 0 {
		t.Fatal("none of 40 reads carried a receive time")
	}
	peer.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

func TestReceiveTimeRejectsShortControlData(t *testing.T) {
	for _, oob := range [][]byte{nil, make([]byte, 8), make([]byte, cmsgHeader), make([]byte, cmsgHeader+4)} {
		if got := receiveTime(oob); got != 0 {
			t.Fatalf("receiveTime(%d zero bytes) = %d, want 0", len(oob), got)
		}
	}
}
