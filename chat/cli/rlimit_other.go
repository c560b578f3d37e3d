//go:build !unix

package cli

import "errors"

func raiseFileLimit() (cur, max uint64, err error) {
	return 0, 0, errors.New("no descriptor limit on this platform")
}
