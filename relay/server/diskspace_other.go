//go:build !(linux || darwin || freebsd)

package server

import "errors"

func statfsFree(string) (DiskSpace, error) {
	return DiskSpace{}, errors.New("free space checks need statfs (a unix system); run with --min-free-mib 0")
}
