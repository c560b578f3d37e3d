package cli_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/cli"
)

// TestRelayClusterFlagErrors: bad or contradictory cluster flags are refused before
// anything is dialled or made, with a message naming the flag and what to do.
func TestRelayClusterFlagErrors(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.creds")
	if err := os.WriteFile(loose, []byte("creds"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "relay.db")
	nats := "nats://127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--nats", nats, "--db", db}, "--db is for the single-node SQLite relay"},
		{[]string{"--nats", nats, "--synchronous", "NORMAL"}, "--synchronous is for the single-node SQLite relay"},
		{[]string{"--nats", nats, "--min-free-mib", "1"}, "--min-free-mib is for the single-node SQLite relay"},
		{[]string{"--db", db, "--nats-replicas", "3"}, "--nats-replicas is for a relay cluster node"},
		{[]string{"--db", db, "--relay-key-file", loose}, "--relay-key-file is for a relay cluster node"},
		{[]string{"--db", db, "--nats", ""}, "--nats is empty"},
		{[]string{"--nats", nats + ",,nats://127.0.0.1:2"}, "empty entry"},
		{[]string{"--nats", "http://127.0.0.1:4222"}, "scheme must be nats://"},
		{[]string{"--nats", "127.0.0.1:4222"}, "not a NATS server URL"},
		{[]string{"--nats", "nats://user:secret@127.0.0.1:4222"}, "use --nats-creds FILE"},
		{[]string{"--nats", nats, "--nats-replicas", "2"}, "use 1, 3 or 5"},
		{[]string{"--nats", nats, "--nats-replicas", "0"}, "use 1, 3 or 5"},
		{[]string{"--nats", nats, "--nats-creds", filepath.Join(dir, "missing.creds")}, "--nats-creds"},
		{[]string{"--nats", nats, "--nats-creds", loose}, "chmod 600"},
	} {
		args := append([]string{"--addr", "127.0.0.1:0", "--admin-addr", ""}, tc.args...)
		// Cancelled: a start that got past the checks would stop at once, not hang.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := cli.RunRelay(ctx, args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("pfschat relay %q: %v, want an error saying %q", tc.args, err, tc.says)
			continue
		}
		if strings.Contains(err.Error(), "secret@") {
			t.Errorf("pfschat relay %q: the error shows the password: %v", tc.args, err)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a refused start made %s (%v)", db, err)
	}
}
