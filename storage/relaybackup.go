package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BackupRelay copies the relay store at src into a new file dst with SQLite's VACUUM
// INTO: a consistent snapshot taken in one read transaction, while a relay may go on
// writing to src. It refuses a src that is not a relay store and a dst that exists,
// makes dst owner-only (it holds the relay's private key, sealed as in src when src
// is sealed: no relay key is needed to copy it), checks the copy's integrity and
// syncs it. On failure dst is removed.
func BackupRelay(ctx context.Context, src, dst string) (err error) {
	src, err = filepath.Abs(src)
	if err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if dst, err = filepath.Abs(dst); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if strings.ContainsAny(src, "?#") {
		return fmt.Errorf("%w: store path %q must not contain '?' or '#'", ErrInvalid, src)
	}
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: backup: there is no relay database at %s (give its path with --db): %w", src, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("storage: backup: the relay database: %w", err)
	}
	// Made empty and owner-only here, with O_EXCL so nothing is ever overwritten;
	// VACUUM INTO fills an empty file.
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s; a backup never overwrites a file: choose a new name", ErrExists, dst)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: backup: %s: its directory %s does not exist: make it first (a backup makes no directory): %w", dst, filepath.Dir(dst), err)
	}
	if err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	// Not query_only (SQLite counts VACUUM INTO as a write); nothing here writes src.
	d, err := openBackupSource(ctx, src, relayKind, "a relay store")
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("storage: backup: VACUUM INTO %s: %w", dst, err)
	}
	c, err := sql.Open(driverName, dsn(dst, SyncFull, true))
	if err != nil {
		return fmt.Errorf("storage: backup: open the copy: %w", err)
	}
	defer c.Close()
	var res string
	if err := c.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		return fmt.Errorf("storage: backup: the copy fails its integrity check: %q %v", res, err)
	}
	cf, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if err := cf.Sync(); err != nil {
		cf.Close()
		return fmt.Errorf("storage: backup: sync the copy: %w", err)
	}
	return cf.Close()
}

// openBackupSource opens the store at src for a backup (another process may be using
// it: busy_timeout) and checks that it is a store of kind, named what in the error.
func openBackupSource(ctx context.Context, src string, kind storeKind, what string) (*sql.DB, error) {
	d, err := sql.Open(driverName, src+"?_pragma=busy_timeout("+strconv.Itoa(int(busyTimeout/time.Millisecond))+")")
	if err != nil {
		return nil, fmt.Errorf("storage: backup: open %s: %w", src, err)
	}
	var version int
	var appID int32
	if err := d.QueryRowContext(ctx, "SELECT user_version, application_id FROM pragma_user_version(), pragma_application_id()").Scan(&version, &appID); err != nil {
		d.Close()
		return nil, fmt.Errorf("storage: backup: read %s: %w", src, err)
	}
	if appID != kind.appID || version == 0 {
		d.Close()
		return nil, fmt.Errorf("%w: %s is not %s (application id %#x)", ErrWrongKind, src, what, appID)
	}
	return d, nil
}
