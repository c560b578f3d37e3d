//go:build !unix

package server

import "errors"

func statfsFree(string) (uint64, error) {
	return 0, errors.New("free space checks need statfs (a unix system); run with --min-free-mib 0")
}
