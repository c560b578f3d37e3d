//go:build !unix

package server

import "net"

type readWaiter struct{}

func newReadWaiter(net.Conn) *readWaiter { return nil }

func (w *readWaiter) wait() {}

func (w *readWaiter) tryWrite([]byte) (int, error) { return 0, nil }
