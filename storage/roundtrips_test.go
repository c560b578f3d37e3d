package storage_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"

	"pfschat/chat"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// countingDriver wraps modernc.org/sqlite and counts the round trips to SQLite of the
// store whose file is target: every write transaction on its writer connection, and
// every statement on its (query-only) reader connections, each of which is a read
// transaction of its own. Connections of other files pass through untouched.
type countingDriver struct {
	inner  sqlite.Driver
	target atomic.Pointer[string]
	reads  atomic.Int64
	writes atomic.Int64
}

func (d *countingDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.inner.Open(dsn)
	if err != nil {
		return nil, err
	}
	path, _, _ := strings.Cut(dsn, "?")
	if t := d.target.Load(); t == nil || path != *t {
		return c, nil
	}
	return &countingConn{Conn: c, d: d, reader: strings.Contains(dsn, "query_only(1)")}, nil
}

type countingConn struct {
	driver.Conn
	d      *countingDriver
	reader bool
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if !c.reader {
		c.d.writes.Add(1)
	}
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return &countingStmt{Stmt: st, c: c}, nil
}

type countingStmt struct {
	driver.Stmt
	c *countingConn
}

func (s *countingStmt) count() {
	if s.c.reader {
		s.c.d.reads.Add(1)
	}
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.count()
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.count()
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

var (
	counting     = &countingDriver{}
	registerOnce sync.Once
)

// TestSendRoundTrips counts the SQLite round trips one message costs its sender, through
// a real controller and relay: Send itself (contact, card and session lookups, and the
// one commit), then the background sender (the relay's answer settled). The recipient
// is offline, so no receipts come back into the count.
func TestSendRoundTrips(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two controllers and a relay")
	}
	registerOnce.Do(func() { sql.Register("sqlite-counting", counting) })
	defer storage.UseDriver("sqlite-counting")()
	ctx := t.Context()
	r := relaytest.Start(t)
	newProfile := func(name string) *chat.Controller {
		p := chat.Profile{Dir: filepath.Join(t.TempDir(), name),
			StoreOptions: storage.ClientOptions{KDF: storage.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, Synchronous: storage.SyncNormal}}
		p.Prefs.OneTimeKeys = 5
		if name == "alice" {
			abs, err := filepath.Abs(p.StorePath())
			if err != nil {
				t.Fatal(err)
			}
			counting.target.Store(&abs)
			t.Cleanup(func() { counting.target.Store(nil) })
		}
		c, err := p.Create(ctx, name, []byte("pass"), r.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	alice, bob := newProfile("alice"), newProfile("bob")
	if _, err := alice.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AddContact(ctx, "alice"); err != nil { // receipts go only to contacts bob accepted
		t.Fatal(err)
	}
	first, err := alice.Send(ctx, "bob", "hello")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, bob, func(e chat.Event) bool { return e.Kind == chat.MessageReceived })
	waitFor(t, alice, func(e chat.Event) bool {
		return e.Kind == chat.DeliveryChanged && e.Message.ID == first.ID && e.Message.State >= chat.Delivered
	})
	bob.Close()
	if n, err := alice.Flush(ctx); err != nil || n != 0 {
		t.Fatalf("flush: %d waiting, %v", n, err)
	}

	const messages = 20
	var sendReads, sendWrites, afterReads, afterWrites int64
	for i := range messages {
		r0, w0 := counting.reads.Load(), counting.writes.Load()
		m, err := alice.Send(ctx, "bob", fmt.Sprint("message ", i))
		if err != nil {
			t.Fatal(err)
		}
		r1, w1 := counting.reads.Load(), counting.writes.Load()
		waitFor(t, alice, func(e chat.Event) bool {
			return e.Kind == chat.DeliveryChanged && e.Message.ID == m.ID && e.Message.State == chat.Sent
		})
		r2, w2 := counting.reads.Load(), counting.writes.Load()
		sendReads, sendWrites = sendReads+r1-r0, sendWrites+w1-w0
		afterReads, afterWrites = afterReads+r2-r1, afterWrites+w2-w1
	}
	per := func(n int64) float64 { return float64(n) / messages }
	t.Logf("SQLite round trips per message: Send %.2f reads + %.2f write transactions; sender after the commit %.2f reads + %.2f write transactions",
		per(sendReads), per(sendWrites), per(afterReads), per(afterWrites))
	// The commit, then the settlement: nothing written is read back on the way. The
	// background sender may settle a message before Send has returned to this loop (its
	// goroutine descheduled after the commit), so the two writes are counted together.
	if sendWrites+afterWrites != 2*messages || sendWrites < messages || afterReads != 0 {
		t.Errorf("per message: %.2f commits in Send, then %.2f reads and %.2f writes to send it; want 1, then 0 and 1",
			per(sendWrites), per(afterReads), per(afterWrites))
	}
}

func waitFor(t *testing.T, c *chat.Controller, match func(chat.Event) bool) {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("event stream closed")
			}
			if match(ev) {
				return
			}
		case <-timeout.C:
			t.Fatal("timed out waiting for an event")
		}
	}
}
