//go:build !linux

package server

import (
	"errors"
	"net"
	"syscall"
)

const sendfileWorks = false

func openRun(syscall.RawConn, int64, int64) (*fileRun, error) {
	return nil, errors.ErrUnsupported
}

func sendRun(net.Conn, *readWaiter, *fileRun, []byte) (bool, error) {
	return false, errors.ErrUnsupported
}
