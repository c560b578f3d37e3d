package server_test

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"pfschat/relay/server"
)

// CapListener closes a connection over its caps at accept, before reading a byte, and
// a connection that closes gives its place back: per address, and in all (where the
// exempt prefixes, trusted proxies, count only).
func TestCapListener(t *testing.T) {
	for _, tc := range []struct {
		name             string
		perAddr, total   int
		exempt           []netip.Prefix
		allowed, refused int
	}{
		{"per address", 2, 10, nil, 2, 1},
		{"in all", 10, 3, nil, 3, 1},
		{"a trusted proxy counts only in all", 1, 3, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := server.CapListener(raw, tc.perAddr, tc.total, tc.exempt)
			defer ln.Close()
			accepted := make(chan net.Conn, 16)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						close(accepted)
						return
					}
					accepted <- c
				}
			}()
			dial := func() net.Conn {
				t.Helper()
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			var held []net.Conn
			for range tc.allowed {
				dial()
				held = append(held, <-accepted)
			}
			for range tc.refused {
				c := dial()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err != io.EOF {
					t.Fatalf("a connection over the cap: read %v, want it closed (EOF)", err)
				}
			}
			held[0].Close()
			held[0].Close() // twice: the place is given back once
			dial()
			select {
			case <-accepted:
			case <-time.After(10 * time.Second):
				t.Fatal("a connection after one closed was not accepted")
			}
			c := dial() // and the caps hold again
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("over the cap again: read %v, want EOF", err)
			}
		})
	}
}
