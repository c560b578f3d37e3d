//go:build !chatlanded

package ui

import (
	"context"
	"fmt"
	"io"
)

// Demo runs `pfschat demo` and returns the exit code.
func Demo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pfschat: the demo is not built yet")
	return 2
}
