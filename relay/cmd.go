package relay

import (
	"context"
	"errors"
	"io"
)

// RunCommand runs `pfschat relay`.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("relay: not built yet")
}
