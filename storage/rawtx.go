package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The relay's queue is written many times a second, a few rows a round, and there the
// per-statement cost of database/sql (a Stmt per transaction, a cancel context, Rows and
// argument conversion: about 1.2 KB and 25 allocations a statement) was most of the
// relay's garbage, and garbage collection was most of its latency tail. rawTxn runs
// those transactions on the writer's driver connection itself, through statements
// prepared once on it and argument slices reused from round to round.

// rawConn is what the writer's driver connection (modernc.org/sqlite) offers.
type rawConn interface {
	driver.ConnBeginTx
	driver.ConnPrepareContext
}

// rawTxn is a write transaction on the writer's driver connection. Like txn, it counts
// statements so tests can fail one. Multi-row statements stage their values first
// (stage), then run them in chunks.
type rawTxn struct {
	conn rawConn
	d    *db
	step int
	vals []any               // staged values
	args []driver.NamedValue // the running statement's arguments
	dest []driver.Value
	// settle, if fn sets it, runs once the transaction is over, still holding the
	// writer, with whether it committed: in-memory state derived from the store (the
	// relay's queue usage) changes there, before the next transaction can read it.
	settle func(committed bool)
}

// rawStmts are the statements prepared on the writer's driver connection, by text.
type rawStmts struct {
	mu    sync.Mutex
	owner rawConn // the connection they belong to
	stmts map[string]driver.Stmt
	txn   rawTxn // reused: the writer connection runs one transaction at a time
}

const maxRawStmts = 200

func (t *rawTxn) next() error {
	t.step++
	if t.d.hook != nil {
		return t.d.hook(t.step)
	}
	return nil
}

// stage adds a value to the staged list (see staged).
func (t *rawTxn) stage(v any) { t.vals = append(t.vals, v) }

// staged returns the values staged so far; clearStaged forgets them.
func (t *rawTxn) staged() []any { return t.vals }

func (t *rawTxn) clearStaged() {
	clear(t.vals) // let the values go
	t.vals = t.vals[:0]
}

func (t *rawTxn) setArgs(vals []any) {
	for i, v := range vals {
		t.args = append(t.args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
}

func (t *rawTxn) resetArgs() {
	clear(t.args)
	t.args = t.args[:0]
}

func (t *rawTxn) stmt(ctx context.Context, q string) (driver.Stmt, error) {
	rs := &t.d.raw
	if st, ok := rs.stmts[q]; ok {
		return st, nil
	}
	st, err := t.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(rs.stmts) >= maxRawStmts {
		// Not expected (the texts come from a few chunk sizes); stay bounded anyway.
		for k, old := range rs.stmts {
			old.Close()
			delete(rs.stmts, k)
			break
		}
	}
	rs.stmts[q] = st
	return st, nil
}

// exec runs q with vals and returns the rows it changed.
func (t *rawTxn) exec(ctx context.Context, q string, vals ...any) (int64, error) {
	if err := t.next(); err != nil {
		return 0, err
	}
	return t.execStmt(ctx, q, vals)
}

// pragma runs a statement outside the transaction's steps (the tests' hook does not
// count it).
func (t *rawTxn) pragma(ctx context.Context, q string) error {
	if _, err := t.execStmt(ctx, q, nil); err != nil {
		return fmt.Errorf("storage: %s: %w", q, err)
	}
	return nil
}

func (t *rawTxn) execStmt(ctx context.Context, q string, vals []any) (int64, error) {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return 0, err
	}
	ex, ok := st.(driver.StmtExecContext)
	if !ok {
		return 0, fmt.Errorf("driver statement %T cannot execute with a context", st)
	}
	t.setArgs(vals)
	res, err := ex.ExecContext(ctx, t.args)
	t.resetArgs()
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// query runs q with vals and calls row for each result row. The values passed to row
// are valid only during the call.
func (t *rawTxn) query(ctx context.Context, q string, row func(cols []driver.Value) error, vals ...any) error {
	if err := t.next(); err != nil {
		return err
	}
	st, err := t.stmt(ctx, q)
	if err != nil {
		return err
	}
	qc, ok := st.(driver.StmtQueryContext)
	if !ok {
		return fmt.Errorf("driver statement %T cannot query with a context", st)
	}
	t.setArgs(vals)
	rows, err := qc.QueryContext(ctx, t.args)
	t.resetArgs()
	if err != nil {
		return err
	}
	n := len(rows.Columns())
	if cap(t.dest) < n {
		t.dest = make([]driver.Value, n)
	}
	dest := t.dest[:n]
	defer clear(dest)
	for {
		err := rows.Next(dest)
		if err == io.EOF {
			break
		}
		if err == nil {
			err = row(dest)
		}
		if err != nil {
			rows.Close()
			return err
		}
	}
	return rows.Close()
}

// valueInt64 and valueString read a result column, naming the column on a type the
// schema does not allow.
func valueInt64(v driver.Value, col string) (int64, error) {
	if n, ok := v.(int64); ok {
		return n, nil
	}
	return 0, fmt.Errorf("column %s: got %T, want an integer", col, v)
}

func valueString(v driver.Value, col string) (string, error) {
	switch s := v.(type) {
	case string:
		return s, nil
	case []byte:
		return string(s), nil
	}
	return "", fmt.Errorf("column %s: got %T, want text", col, v)
}

// writeRaw is write for the hot paths: fn runs in one IMMEDIATE transaction on the
// writer's driver connection and is committed; any error (or panic) rolls it back.
func (d *db) writeRaw(ctx context.Context, fn func(*rawTxn) error) error {
	return d.writeRawSync(ctx, true, fn)
}

// writeRawUnsynced is writeRaw for a transaction whose loss to a power cut is harmless
// (an ack's delete: the message comes again, and receivers drop it by its id): on a
// FULL store it commits with synchronous=NORMAL, so it does not wait for the disk's
// flush, and the next synced commit's flush of the WAL carries it to disk. A process
// crash loses it no more than a synced one. Acks then never hold the writer for an
// fsync that sends queue behind.
func (d *db) writeRawUnsynced(ctx context.Context, fn func(*rawTxn) error) error {
	return d.writeRawSync(ctx, d.sync != SyncFull, fn)
}

const (
	pragmaSyncNormal = "PRAGMA synchronous=NORMAL"
	pragmaSyncFull   = "PRAGMA synchronous=FULL"
)

func (d *db) writeRawSync(ctx context.Context, synced bool, fn func(*rawTxn) error) error {
	c, err := d.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("storage: writer connection: %w", err)
	}
	defer c.Close()
	return c.Raw(func(dc any) (err error) {
		conn, ok := dc.(rawConn)
		if !ok {
			return fmt.Errorf("storage: driver connection %T cannot run transactions", dc)
		}
		rs := &d.raw
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if rs.owner != conn {
			// A new connection (database/sql replaced a broken one): the statements
			// prepared on the old one died with it.
			rs.owner, rs.stmts = conn, map[string]driver.Stmt{}
		}
		t := &rs.txn
		*t = rawTxn{conn: conn, d: d, vals: t.vals[:0], args: t.args[:0], dest: t.dest}
		if !synced {
			if err := t.pragma(ctx, pragmaSyncNormal); err != nil {
				return err
			}
			// Back to FULL whatever happens below; a connection that cannot be put
			// back is closed (driver.ErrBadConn), never left weaker than its store.
			defer func() {
				if perr := t.pragma(context.WithoutCancel(ctx), pragmaSyncFull); perr != nil {
					err = fmt.Errorf("%w: storage: restoring synchronous=FULL: %v", driver.ErrBadConn, perr)
				}
			}()
		}
		tx, err := conn.BeginTx(ctx, driver.TxOptions{})
		if err != nil {
			if isBusy(err) {
				return fmt.Errorf("%w: %s (waited %v): %v", ErrBusy, d.path, busyTimeout, err)
			}
			return fmt.Errorf("storage: begin: %w", err)
		}
		finished, committed := false, false
		defer func() {
			if !finished {
				_ = tx.Rollback()
				t.clearStaged()
				t.resetArgs()
			}
			if t.settle != nil {
				t.settle(committed)
				t.settle = nil
			}
		}()
		if err := fn(t); err != nil {
			return err
		}
		if err := t.next(); err != nil {
			return err
		}
		finished = true // a failed COMMIT rolls back by itself
		if err := tx.Commit(); err != nil {
			if isBusy(err) {
				return fmt.Errorf("%w: %s: commit: %v", ErrBusy, d.path, err)
			}
			return fmt.Errorf("storage: commit: %w", err)
		}
		committed = true
		return nil
	})
}

// closeRaw finalizes the statements prepared on the writer's driver connection.
func (d *db) closeRaw(ctx context.Context) error {
	rs := &d.raw
	rs.mu.Lock()
	empty := len(rs.stmts) == 0
	rs.mu.Unlock()
	if empty {
		return nil
	}
	c, err := d.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		var errs []error
		if conn, ok := dc.(rawConn); ok && conn == rs.owner {
			for _, st := range rs.stmts {
				errs = append(errs, st.Close())
			}
		}
		rs.stmts, rs.owner = nil, nil
		return errors.Join(errs...)
	})
}
