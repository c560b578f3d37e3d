package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
)

// PeekClientName reads the identity name of the client store at path without unlocking
// it: the name is public (the relay lists it) and stored in the clear, so the unlock
// screen can say whose profile it opens. It opens the file read-only and changes
// nothing; ErrNotFound when the file or its identity is missing.
func PeekClientName(ctx context.Context, path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	d, err := sql.Open(driverName, "file:"+path+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(1000)")
	if err != nil {
		return "", fmt.Errorf("storage: peek %s: %w", path, err)
	}
	defer d.Close()
	var name string
	err = d.QueryRowContext(ctx, "SELECT name FROM identity WHERE id = 1").Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: no identity in %s", ErrNotFound, path)
	}
	if err != nil {
		return "", fmt.Errorf("storage: peek %s: %w", path, err)
	}
	return name, nil
}
