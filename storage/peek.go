package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
)

// sqliteHeader is the magic every SQLite database file starts with
// (sqlite.org/fileformat.html).
const sqliteHeader = "SQLite format 3\x00"

// IsSQLiteFile reports whether the file at path starts with SQLite's header: a file
// that does not is no database at all (another program's, or not a file pfschat wrote),
// which callers name differently from a damaged store. It reads 16 bytes.
func IsSQLiteFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	_, err = io.ReadFull(f, head)
	return err == nil && string(head) == sqliteHeader
}

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

// UnfinishedClient reports whether the file at path is a client store whose creation
// was cut short: empty (made, then the process stopped), or a client store that holds
// no identity. A profile's identity is saved in its store's first moments and every
// other row a client keeps hangs off it, so such a file holds nothing of anyone's; it
// only stands in the way of the next creation. It opens the file read-only and changes
// nothing. Anything it cannot read as a client store, or one with an identity, is not
// unfinished: never remove that.
func UnfinishedClient(ctx context.Context, path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if fi.Size() == 0 {
		return true
	}
	d, err := sql.Open(driverName, "file:"+path+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(1000)")
	if err != nil {
		return false
	}
	defer d.Close()
	var appID int32
	if err := d.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil || appID != clientKind.appID {
		return false
	}
	var n int
	if err := d.QueryRowContext(ctx, "SELECT count(*) FROM identity").Scan(&n); err != nil {
		return false
	}
	return n == 0
}
