// Package cli implements pfschat's headless commands (init, add, send, recv, ...) for
// scripts and devices.
package cli

import (
	"context"
	"fmt"
	"io"
)

// Main runs one headless command and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "pfschat: command %q is not built yet\n", args)
	return 2
}
