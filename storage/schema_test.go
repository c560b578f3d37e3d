package storage

import (
	"bytes"
	"compress/gzip"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateSchema = flag.Bool("update", false, "rewrite schema/*.sql and schema/*.db.gz from the migrations")

// TestSchemaSnapshot keeps schema/<kind>.sql and schema/<kind>.db.gz true: it makes a
// new file with the migrations one after another, writes out its schema and rows (the
// snapshot, which must equal the embedded file; -update rewrites that), then makes a
// new file from the embedded snapshot and checks that it holds the same schema, rows,
// version and application id as the one the migrations made. That file, gzipped, is
// the image (-update rewrites it too); a new file made as OpenRelay and CreateClient
// make one, from the image, must hold the same again.
func TestSchemaSnapshot(t *testing.T) {
	ctx := t.Context()
	for _, kind := range []storeKind{clientKind, relayKind} {
		t.Run(kind.name, func(t *testing.T) {
			migs, err := loadMigrations(kind)
			if err != nil {
				t.Fatal(err)
			}
			byMigrations := kind
			byMigrations.schema, byMigrations.image = nil, nil
			chainPath := filepath.Join(t.TempDir(), "migrations.db")
			d, _, err := openDB(ctx, chainPath, byMigrations, "", true, nil)
			if err != nil {
				t.Fatal(err)
			}
			d.close()
			want := snapshotOf(t, chainPath, kind.name, len(migs))

			file := filepath.Join("schema", kind.name+".sql")
			if *updateSchema {
				if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (make it with go test ./storage -run TestSchemaSnapshot -update)", err)
			}
			if string(got) != want {
				t.Fatalf("%s is not the schema the migrations make; rewrite it with go test ./storage -run TestSchemaSnapshot -update\n got: %s\nwant: %s", file, got, want)
			}
			if schemaSnapshot(kind, len(migs)) == "" {
				t.Fatalf("the embedded %s is not used for a new file at version %d", file, len(migs))
			}

			bySnapshot := kind
			bySnapshot.image = nil
			snapPath := newStore(t, bySnapshot)
			sameStore(t, snapPath, chainPath, kind.name, len(migs), "from "+file)

			image := filepath.Join("schema", kind.name+".db.gz")
			if *updateSchema {
				writeImage(t, snapPath, image)
			}
			if imageAt(kind, len(migs)) == nil {
				t.Fatalf("%s is missing or not at version %d; rewrite it with go test ./storage -run TestSchemaSnapshot -update", image, len(migs))
			}
			if imageAt(kind, len(migs)-1) != nil || imageAt(kind, len(migs)+1) != nil {
				t.Fatalf("%s is taken for a version it does not hold", image)
			}
			imgPath := newStore(t, kind)
			sameStore(t, imgPath, chainPath, kind.name, len(migs), "from "+image)
		})
	}
}

// newStore makes a new store of kind in a temporary directory, closes it and returns
// its path.
func newStore(t *testing.T, kind storeKind) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), kind.name+".db")
	d, _, err := openDB(t.Context(), path, kind, "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.close()
	return path
}

// sameStore fails unless the store at path holds what the one the migrations made
// (chainPath) holds: schema, rows and the pragmas that shape the file.
func sameStore(t *testing.T, path, chainPath, kind string, version int, how string) {
	t.Helper()
	if a, b := snapshotOf(t, path, kind, version), snapshotOf(t, chainPath, kind, version); a != b {
		t.Fatalf("a new file made %s differs from one made by the migrations:\n got: %s\nwant: %s", how, a, b)
	}
	for _, pragma := range []string{"user_version", "application_id", "journal_mode", "page_size", "auto_vacuum"} {
		if a, b := pragmaOf(t, path, pragma), pragmaOf(t, chainPath, pragma); a != b {
			t.Errorf("PRAGMA %s: %s made %s, %s from the migrations", pragma, a, how, b)
		}
	}
}

// writeImage gzips the store at path (closed: its WAL checkpointed into it) to image,
// the same bytes for the same file.
func writeImage(t *testing.T, path, image string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(image, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSchemaSnapshotOnlyAtItsVersion: a snapshot is used only for the version it
// names, so a migration added without rewriting it still makes the right file.
func TestSchemaSnapshotOnlyAtItsVersion(t *testing.T) {
	migs, err := loadMigrations(relayKind)
	if err != nil {
		t.Fatal(err)
	}
	if schemaSnapshot(relayKind, len(migs)) == "" {
		t.Fatal("no snapshot at the current version")
	}
	if got := schemaSnapshot(relayKind, len(migs)+1); got != "" {
		t.Fatal("a snapshot was used for a version it does not name")
	}
	if got := schemaSnapshot(relayKind, len(migs)-1); got != "" {
		t.Fatal("a snapshot was used for a version it does not name")
	}
}

// snapshotOf writes out the file's schema objects, in the order they were made, as the
// SQL that makes them, then an INSERT for every row of every table. SQLite's own
// tables (sqlite_sequence) are made by what needs them.
func snapshotOf(t *testing.T, path, kind string, version int) string {
	t.Helper()
	d := rawDB(t, path)
	var b strings.Builder
	fmt.Fprintf(&b, schemaVersionLine+"made from migrations/%s by TestSchemaSnapshot\n", kind, version, kind)
	b.WriteString("-- (go test ./storage -run TestSchemaSnapshot -update); do not edit.\n")
	rows, err := d.Query("SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, q string
		if err := rows.Scan(&typ, &name, &q); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s;\n", q)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	// An AUTOINCREMENT table makes SQLite's sqlite_sequence, which outlives the table:
	// the relay's migrations leave one behind. The snapshot makes it the same way.
	var sequence int
	if err := d.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'").Scan(&sequence); err != nil {
		t.Fatal(err)
	}
	if sequence > 0 && !strings.Contains(b.String(), "AUTOINCREMENT") {
		b.WriteString("-- sqlite_sequence, left behind by an AUTOINCREMENT table the migrations dropped:\n")
		b.WriteString("CREATE TABLE pfschat_sequence_maker (id INTEGER PRIMARY KEY AUTOINCREMENT);\n")
		b.WriteString("DROP TABLE pfschat_sequence_maker;\n")
	}
	if sequence > 0 {
		tables = append(tables, "sqlite_sequence")
	}
	for _, table := range tables {
		b.WriteString(tableRows(t, d, table))
	}
	return b.String()
}

// tableRows returns an INSERT statement for each row of table, in rowid (or key) order.
func tableRows(t *testing.T, d *sql.DB, table string) string {
	t.Helper()
	cols, err := d.Query(fmt.Sprintf("SELECT name FROM pragma_table_info(%q) ORDER BY cid", table))
	if err != nil {
		t.Fatal(err)
	}
	var quoted []string
	for cols.Next() {
		var c string
		if err := cols.Scan(&c); err != nil {
			t.Fatal(err)
		}
		quoted = append(quoted, fmt.Sprintf("quote(%q)", c))
	}
	cols.Close()
	rows, err := d.Query(fmt.Sprintf("SELECT %s FROM %q ORDER BY 1", strings.Join(quoted, " || ',' || "), table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var values string
		if err := rows.Scan(&values); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "INSERT INTO %s VALUES (%s);\n", table, values)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func pragmaOf(t *testing.T, path, pragma string) string {
	t.Helper()
	d := rawDB(t, path)
	var v string
	if err := d.QueryRow("PRAGMA " + pragma).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
