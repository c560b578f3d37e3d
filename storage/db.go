package storage

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"modernc.org/sqlite" // the "sqlite" driver (pure Go, no cgo)
)

//go:embed migrations
var migrationsFS embed.FS

// schemaFS holds each store kind's whole schema at its latest version, written from
// its migrations by TestSchemaSnapshot (go test ./storage -run TestSchemaSnapshot
// -update), which also checks that a file made from it is the file the migrations
// make, row for row. A new file is made from it: the migrations one after another
// re-read the whole schema at every ALTER TABLE, most of a new store's CPU (issue 14:
// the demo's first frame waits for three).
//
//go:embed schema
var schemaFS embed.FS

// storeKind names a schema family: its migrations folder and its application_id, so a
// relay database is never mistaken for a client one.
type storeKind struct {
	name  string // migrations/<name>/NNNN_*.sql
	appID int32  // PRAGMA application_id written by migration 1
	fsys  fs.FS  // where the migrations live (tests substitute their own)
	// schema holds schema/<name>.sql, the whole schema at one version (schemaFS); a new
	// file at that version is made from it instead of from the migrations.
	schema fs.FS
	// image holds schema/<name>.db.gz, an empty store at the schema's version
	// (imageAt); a new file starts as it when it is there. Tests leave it out to
	// make a file from the snapshot.
	image fs.FS
	// dataSteps, by version, rewrite rows the SQL of that version cannot reach (sealed
	// values), in the same transaction as its SQL. keys is nil when the store was
	// opened without its key (a fresh file, or a test).
	dataSteps map[int]func(ctx context.Context, tx *txn, keys *keyring) error
}

var (
	clientKind = storeKind{name: "client", appID: 0x70667363, fsys: migrationsFS, schema: schemaFS, image: schemaFS, // "pfsc"
		dataSteps: map[int]func(context.Context, *txn, *keyring) error{4: awaitingSessionColumn}}
	relayKind = storeKind{name: "relay", appID: 0x70667372, fsys: migrationsFS, schema: schemaFS, image: schemaFS} // "pfsr"
)

// Synchronous modes. FULL (the default) fsyncs the WAL on every commit: a commit that
// returned survives power loss. NORMAL fsyncs only at checkpoints: the database stays
// consistent after a power cut, but the last commits before it may be rolled back (a
// process crash alone loses nothing in either mode). The relay may choose NORMAL when a
// benchmark shows it needs the throughput, accepting that an "accepted" message can be
// lost on power failure. Either way the relay's acks commit as NORMAL (writeRawUnsynced).
const (
	SyncFull   = "FULL"
	SyncNormal = "NORMAL"
)

const readPool = 4 // reader connections; WAL lets them run beside the writer

// driverName is the database/sql driver every store opens: modernc.org/sqlite. A
// variable so a test can put a wrapping driver in front of it and count what a code
// path asks of SQLite.
var driverName = "sqlite"

// busyTimeout is how long a write waits for another process (a headless command, a
// second UI) holding the write lock before failing with ErrBusy. A variable for tests.
var busyTimeout = 5 * time.Second

// isBusy reports SQLITE_BUSY / SQLITE_LOCKED (primary codes 5 and 6).
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == 5 || code == 6
	}
	return false
}

// db is one SQLite file opened as one writer connection (every write transaction is
// BEGIN IMMEDIATE on it, so writers never deadlock or fail with SQLITE_BUSY inside this
// process) plus a small pool of query-only reader connections.
type db struct {
	w, r *sql.DB
	path string
	sync string // SyncFull or SyncNormal: the writer's synchronous mode

	// Prepared statements of the writer connection, by query text. Parsing costs more
	// than running most of our statements, so a statement used inside a transaction is
	// prepared after that transaction (the only connection is free then) and reused by
	// later ones through Tx.StmtContext.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
	want   atomic.Bool // wanted is not empty

	// Statements of the hot write paths, prepared on the writer's driver connection
	// (see rawtx.go).
	raw rawStmts

	// Prepared statements of the reader pool (database/sql prepares each on every
	// reader connection as it is used).
	rstmts sync.Map // query text → *sql.Stmt

	// hook, when set (tests only), runs before every statement of a write transaction
	// and before its commit, with the 1-based step number; an error aborts the
	// transaction there. It is how the tests inject failure part-way.
	hook func(step int) error
}

func dsn(path string, sync string, reader bool) string {
	q := []string{
		"_pragma=busy_timeout(" + strconv.Itoa(int(busyTimeout/time.Millisecond)) + ")",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(" + sync + ")",
		// Deleted rows (consumed prekeys, old ratchet states) are overwritten with
		// zeros rather than left in free pages: forward secrecy needs them gone.
		"_pragma=secure_delete(1)",
	}
	if reader {
		q = append(q, "_pragma=query_only(1)")
	} else {
		q = append(q, "_txlock=immediate")
	}
	return path + "?" + strings.Join(q, "&")
}

// openDB opens (create=true: creates if missing) the store at path, refuses a newer
// schema or another kind of database without writing to it, switches it to WAL and
// applies pending migrations. It returns the schema version found before migrating.
//
// unlock, when non-nil, runs on an existing store after the version checks and before
// anything is written (WAL switch, migrations): a wrong passphrase changes nothing. The
// storage key it returns (nil: none) is what migrations that rewrite sealed rows use.
func openDB(ctx context.Context, path string, kind storeKind, sync string, create bool, unlock func(context.Context, *sql.DB) (*keyring, error)) (*db, int, error) {
	if sync == "" {
		sync = SyncFull
	}
	sync = strings.ToUpper(sync)
	if sync != SyncFull && sync != SyncNormal {
		return nil, 0, fmt.Errorf("%w: synchronous mode %q (want FULL or NORMAL)", ErrInvalid, sync)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, 0, fmt.Errorf("storage: resolve path %q: %w", path, err)
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, 0, fmt.Errorf("%w: store path %q must not contain '?' or '#'", ErrInvalid, abs)
	}
	migs, err := loadMigrations(kind)
	if err != nil {
		return nil, 0, err
	}
	if !create {
		if fi, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("%w: no store at %s", ErrNotFound, abs)
		} else if err != nil {
			return nil, 0, fmt.Errorf("storage: %w", err)
		} else if fi.Size() == 0 {
			return nil, 0, damaged(kind, abs, "it is empty (0 bytes)")
		}
	} else if err := createPrivate(abs, func() []byte { return imageAt(kind, len(migs)) }); err != nil {
		return nil, 0, err
	}
	w, err := sql.Open(driverName, dsn(abs, sync, false))
	if err != nil {
		return nil, 0, fmt.Errorf("storage: open %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	d := &db{w: w, path: abs, sync: sync, stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}}

	// Inspect before touching anything: a newer or foreign file must not be modified.
	var version int
	var appID int32
	if err := w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		w.Close()
		if sqliteCode(err) == sqliteNotADB {
			return nil, 0, damaged(kind, abs, "it is not a SQLite database")
		}
		return nil, 0, diskFull(abs, fmt.Errorf("storage: read schema version of %s: %w", abs, err))
	}
	if err := w.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		w.Close()
		return nil, 0, fmt.Errorf("storage: read application id of %s: %w", abs, err)
	}
	if version > 0 && appID != kind.appID {
		w.Close()
		return nil, 0, fmt.Errorf("%w: %w: %s (application id %#x, want %s store %#x); restore the right file from a backup", ErrWrongKind, ErrDamaged, abs, appID, kind.name, kind.appID)
	}
	if version > len(migs) {
		w.Close()
		return nil, 0, fmt.Errorf("%w: %s has schema version %d, this program knows up to %d", ErrNewerSchema, abs, version, len(migs))
	}
	if version == 0 && appID == 0 {
		// A brand-new file, or a database that is not ours. Refuse the latter.
		var n int
		if err := w.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			w.Close()
			return nil, 0, fmt.Errorf("storage: read %s: %w", abs, err)
		}
		if n > 0 {
			w.Close()
			return nil, 0, fmt.Errorf("%w: %w: %s holds tables but no pfschat schema; restore the right file from a backup", ErrWrongKind, ErrDamaged, abs)
		}
		if !create {
			w.Close()
			return nil, 0, damaged(kind, abs, "it holds no schema")
		}
	}
	var keys *keyring
	if unlock != nil && version > 0 {
		if keys, err = unlock(ctx, w); err != nil {
			w.Close()
			return nil, 0, err
		}
	}
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		w.Close()
		return nil, 0, fmt.Errorf("storage: switch %s to WAL (got %q): %v", abs, mode, err)
	}
	if err := d.migrate(ctx, kind, migs, version, len(migs), keys); err != nil {
		w.Close()
		return nil, 0, diskFull(abs, err)
	}
	r, err := sql.Open(driverName, dsn(abs, sync, true))
	if err != nil {
		w.Close()
		return nil, 0, fmt.Errorf("storage: open readers on %s: %w", abs, err)
	}
	r.SetMaxOpenConns(readPool)
	r.SetMaxIdleConns(readPool)
	d.r = r
	return d, version, nil
}

// query runs a read on the reader pool through a cached prepared statement.
func (d *db) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := d.readStmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is query for one row; errors surface at Scan, as with sql.Row.
func (d *db) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := d.readStmt(ctx, q)
	if err != nil {
		return d.r.QueryRowContext(ctx, q, args...) // reports the same error at Scan
	}
	return st.QueryRowContext(ctx, args...)
}

func (d *db) readStmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := d.rstmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := d.r.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := d.rstmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (d *db) close() error {
	errRaw := d.closeRaw(context.Background())
	d.rstmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		d.rstmts.Delete(k)
		return true
	})
	d.stmtMu.Lock()
	for _, st := range d.stmts {
		st.Close()
	}
	d.stmts = nil
	d.stmtMu.Unlock()
	var errR error
	if d.r != nil {
		errR = d.r.Close()
	}
	errW := d.w.Close()
	return errors.Join(errRaw, errW, errR)
}

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/<kind>/NNNN_name.sql, numbered 1, 2, 3... without gaps.
func loadMigrations(kind storeKind) ([]migration, error) {
	dir := "migrations/" + kind.name
	entries, err := fs.ReadDir(kind.fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("storage: read embedded migrations: %w", err)
	}
	var migs []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("storage: migration file %s: name must be NNNN_description.sql", e.Name())
		}
		b, err := fs.ReadFile(kind.fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("storage: read migration %s: %w", e.Name(), err)
		}
		migs = append(migs, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].version < migs[j].version })
	for i, m := range migs {
		if m.version != i+1 {
			return nil, fmt.Errorf("storage: migrations of %s store not numbered 1..n: %s at position %d", kind.name, m.name, i+1)
		}
	}
	return migs, nil
}

// migrate applies migrations from+1..to, each in its own transaction together with the
// new user_version (and the version's data step, if any), so a crash leaves the file at
// a whole version.
func (d *db) migrate(ctx context.Context, kind storeKind, migs []migration, from, to int, keys *keyring) error {
	step := func(ctx context.Context, tx *txn, m migration) error {
		if m.version == 1 {
			if _, err := tx.exec(ctx, fmt.Sprintf("PRAGMA application_id = %d", kind.appID)); err != nil {
				return err
			}
		}
		if err := tx.next(); err != nil {
			return err
		}
		if _, err := tx.tx.ExecContext(ctx, m.sql); err != nil { // many statements: not cached
			return err
		}
		if step := kind.dataSteps[m.version]; step != nil {
			if err := step(ctx, tx, keys); err != nil {
				return err
			}
		}
		_, err := tx.exec(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version))
		return err
	}
	if from == 0 && to > 0 {
		// A new file: the whole schema in one transaction (one commit, not one per
		// migration: a new profile's or relay's first moments wait for these), from the
		// snapshot of the schema when there is one for this version (schemaFS).
		last := migs[to-1]
		snapshot := schemaSnapshot(kind, to)
		err := d.write(ctx, func(tx *txn) error {
			if snapshot != "" {
				if _, err := tx.exec(ctx, fmt.Sprintf("PRAGMA application_id = %d", kind.appID)); err != nil {
					return err
				}
				if _, err := tx.tx.ExecContext(ctx, snapshot); err != nil {
					return fmt.Errorf("schema/%s.sql: %w", kind.name, err)
				}
				_, err := tx.exec(ctx, fmt.Sprintf("PRAGMA user_version = %d", to))
				return err
			}
			for _, m := range migs[:to] {
				if err := step(ctx, tx, m); err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage: create %s store %s at version %d (%s): %w", kind.name, d.path, last.version, last.name, err)
		}
		return nil
	}
	for _, m := range migs[from:to] {
		err := d.write(ctx, func(tx *txn) error { return step(ctx, tx, m) })
		if err != nil {
			return fmt.Errorf("storage: migrate %s store %s to version %d (%s): %w", kind.name, d.path, m.version, m.name, err)
		}
	}
	return nil
}

// schemaVersionLine starts schema/<kind>.sql: the version its schema is at.
const schemaVersionLine = "-- pfschat %s store, schema version %d: "

// schemaSnapshot returns the SQL that makes kind's whole schema at version v in an
// empty file, or "" when kind has no snapshot at that version (then the migrations
// make it).
func schemaSnapshot(kind storeKind, v int) string {
	if kind.schema == nil {
		return ""
	}
	b, err := fs.ReadFile(kind.schema, "schema/"+kind.name+".sql")
	if err != nil || !bytes.HasPrefix(b, fmt.Appendf(nil, schemaVersionLine, kind.name, v)) {
		return ""
	}
	return string(b)
}

// txn is a write transaction. Its methods count statements so tests can fail one.
type txn struct {
	tx   *sql.Tx
	d    *db
	step int
}

func (t *txn) next() error {
	t.step++
	if t.d.hook != nil {
		return t.d.hook(t.step)
	}
	return nil
}

const maxCachedStmts = 200

// stmt returns q prepared for this transaction when it is cached, else nil (and asks for
// it to be prepared after the transaction).
func (t *txn) stmt(ctx context.Context, q string) *sql.Stmt {
	d := t.d
	d.stmtMu.Lock()
	st, ok := d.stmts[q]
	if !ok && d.stmts != nil && len(d.stmts)+len(d.wanted) < maxCachedStmts && !strings.HasPrefix(q, "PRAGMA") {
		d.wanted[q] = true
		d.want.Store(true)
	}
	d.stmtMu.Unlock()
	if !ok {
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

// prepareWanted prepares the statements the last transactions asked for. It runs with
// no transaction open, so the writer connection is free.
func (d *db) prepareWanted(ctx context.Context) {
	// Never hold stmtMu while waiting for the connection: the transaction that holds the
	// connection needs stmtMu to look statements up.
	d.stmtMu.Lock()
	d.want.Store(false)
	var qs []string
	for q := range d.wanted {
		qs = append(qs, q)
		delete(d.wanted, q)
	}
	d.stmtMu.Unlock()
	for _, q := range qs {
		st, err := d.w.PrepareContext(ctx, q)
		if err != nil {
			continue // it will run unprepared; its own error shows where it is used
		}
		d.stmtMu.Lock()
		if _, dup := d.stmts[q]; dup || d.stmts == nil {
			st.Close()
		} else {
			d.stmts[q] = st
		}
		d.stmtMu.Unlock()
	}
}

func (t *txn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := t.next(); err != nil {
		return nil, err
	}
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

// execN runs an UPDATE/DELETE and returns the rows it affected.
func (t *txn) execN(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *txn) scan(ctx context.Context, q string, args []any, dest ...any) error {
	if err := t.next(); err != nil {
		return err
	}
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...).Scan(dest...)
	}
	return t.tx.QueryRowContext(ctx, q, args...).Scan(dest...)
}

func (t *txn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := t.next(); err != nil {
		return nil, err
	}
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

// write runs fn in one IMMEDIATE transaction on the writer connection and commits it;
// any error (or panic) rolls everything back.
func (d *db) write(ctx context.Context, fn func(*txn) error) (err error) {
	defer func() {
		if err != nil {
			err = diskFull(d.path, err)
		}
	}()
	defer func() {
		if d.want.Load() {
			d.prepareWanted(context.WithoutCancel(ctx))
		}
	}()
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		if isBusy(err) {
			return fmt.Errorf("%w: %s (waited %v): %v", ErrBusy, d.path, busyTimeout, err)
		}
		return fmt.Errorf("storage: begin: %w", err)
	}
	t := &txn{tx: tx, d: d}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err = fn(t); err != nil {
		return err
	}
	if err = t.next(); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		if isBusy(err) {
			return fmt.Errorf("%w: %s: commit: %v", ErrBusy, d.path, err)
		}
		return fmt.Errorf("storage: commit: %w", err)
	}
	return nil
}

// Times are stored as INTEGER Unix nanoseconds, 0 for the zero time, and come back in UTC.
func dbTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if t.Year() < 1678 {
		return math.MinInt64 + 1
	}
	if t.Year() > 2261 {
		return math.MaxInt64
	}
	return t.UnixNano()
}

func goTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// IntegrityCheck runs PRAGMA integrity_check and returns an error describing any problem.
func (d *db) integrityCheck(ctx context.Context) error {
	rows, err := d.r.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("storage: integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("storage: integrity check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("storage: integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, d.path, strings.Join(problems, "; "))
	}
	return nil
}

// SQLite primary result codes this package tells apart.
const (
	sqliteIOErr  = 10
	sqliteFull   = 13
	sqliteNotADB = 26
)

// sqliteCode is the primary SQLite result code in err's chain, 0 if none.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// damaged is the ErrDamaged error for the file at path, saying why and what to do for
// a store of that kind.
func damaged(kind storeKind, path, why string) error {
	what := "restore it from a backup (creating a new profile would give up its name)"
	if kind.name == relayKind.name {
		what = "restore it from a backup (pfschat relay backup); a new file would be a new relay, with a new key every client must re-pin"
	}
	return fmt.Errorf("%w: %s: %s; it is not a usable pfschat store: %s", ErrDamaged, path, why, what)
}

// createPrivate makes sure a store about to be created is a file only its owner can
// read (0600), whatever the umask: SQLite creates the -wal and -shm files with the
// main file's mode. A file it makes starts as image(), when that is not nil: the schema
// image for the current version (imageAt), an empty store, which openDB then opens as
// it opens any store of that version. An existing file is left as it is.
func createPrivate(path string, image func() []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: create %s: %w", path, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("storage: create %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if img := image(); img != nil {
		// Synced with its directory before SQLite writes to it, in either synchronous
		// mode: a later checkpoint must not land on a file a power cut could leave
		// empty.
		if _, err := f.Write(img); err != nil {
			return fail(err)
		}
		if err := f.Sync(); err != nil {
			return fail(err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fail(err)
		}
	}
	return f.Close()
}

// imageAt returns kind's empty store at schema version v, as a file
// (schema/<kind>.db.gz, written with the snapshot by TestSchemaSnapshot -update), or nil
// when its image is not at that version: the SQLite header must say v and kind's
// application id. SQLite then only reads the schema, as it does when it opens any
// store, instead of parsing, building and journaling it: a new store costs about half
// (BenchmarkCreateStore; issue 14: the demo's first frame waits for three new stores).
func imageAt(kind storeKind, v int) []byte {
	if kind.image == nil {
		return nil
	}
	gz, err := fs.ReadFile(kind.image, "schema/"+kind.name+".db.gz")
	if err != nil {
		return nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(zr); err != nil {
		return nil
	}
	img := b.Bytes()
	// The header (sqlite.org/fileformat.html): the magic, then the user version at
	// offset 60 and the application id at 68, big-endian.
	if len(img) < 100 || !bytes.HasPrefix(img, []byte(sqliteHeader)) ||
		binary.BigEndian.Uint32(img[60:]) != uint32(v) || int32(binary.BigEndian.Uint32(img[68:])) != kind.appID {
		return nil
	}
	return img
}

// diskFree is what the filesystem holding a store has left: bytes for this user, and
// free inodes out of how many (0 of 0 where the file system has no fixed count, as
// btrfs).
type diskFree struct {
	bytes, inodes, totalInodes uint64
}

// outOfInodes: room for bytes but for no new file (SQLite's -wal and -shm files, a
// backup): ENOSPC all the same.
func (d diskFree) outOfInodes() bool { return d.totalInodes > 0 && d.inodes == 0 }

// freeSpace is what the filesystem holding dir has left (a variable so a test can
// play a full disk).
var freeSpace = statDisk

// lowSpace is how little free space makes an I/O error count as a full disk.
const lowSpace = 1 << 20

// diskFull turns SQLite's "database or disk is full" and the I/O errors a full disk
// causes (SQLITE_IOERR_WRITE, _SHMSIZE — "disk I/O error (4874)") into ErrDiskFull
// naming the disk; other errors pass unchanged.
func diskFull(path string, err error) error {
	if err == nil || errors.Is(err, ErrDiskFull) {
		return err
	}
	code := sqliteCode(err)
	if code != sqliteFull && code != sqliteIOErr && !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	dir := filepath.Dir(path)
	free, serr := freeSpace(dir)
	if code != sqliteFull && !errors.Is(err, syscall.ENOSPC) && (serr != nil || free.bytes >= lowSpace && !free.outOfInodes()) {
		return err // an I/O error with space left: not a full disk
	}
	if serr == nil && free.bytes >= lowSpace && free.outOfInodes() {
		return fmt.Errorf("%w: the disk holding %s has no free inodes left: it can hold no more files, though %d bytes are free; nothing was written — delete some files on it and try again (%v)", ErrDiskFull, dir, free.bytes, err)
	}
	left := "unknown"
	if serr == nil {
		left = fmt.Sprintf("%d bytes", free.bytes)
	}
	return fmt.Errorf("%w: the disk holding %s is full (%s free); nothing was written — free some space on it and try again (%v)", ErrDiskFull, dir, left, err)
}

// syncDir fsyncs the directory dir, so that a file just made in it survives a power cut
// under its name. Windows cannot sync a directory (NTFS journals the name itself).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
