package cli_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/relay/client"
)

func TestRunRelayServesAndDrains(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	db := filepath.Join(t.TempDir(), "relay.db")
	done := make(chan error, 1)
	go func() {
		done <- cli.RunRelay(ctx, []string{"--addr", "127.0.0.1:0", "--db", db, "--log", filepath.Join(t.TempDir(), "relay.log")}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url, fp string
	for lines.Scan() {
		l := lines.Text()
		if u, ok := strings.CutPrefix(l, "pfschat relay listening on "); ok {
			url = u
		}
		if f, ok := strings.CutPrefix(l, "relay key fingerprint: "); ok {
			fp = f
			break
		}
	}
	if url == "" || fp == "" {
		t.Fatal("relay did not print its address and fingerprint")
	}
	go io.Copy(io.Discard, pr)
	c := client.New(client.Config{URL: url})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("relay exited with %v", err)
	}
	// The database holds the relay key: owner-only.
	if st, err := os.Stat(db); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

func TestRunRelayBadFlags(t *testing.T) {
	if err := cli.RunRelay(t.Context(), []string{"--nope"}, io.Discard, io.Discard); err == nil {
		t.Fatal("unknown flag accepted")
	}
	if err := cli.RunRelay(t.Context(), []string{"extra"}, io.Discard, io.Discard); err == nil {
		t.Fatal("stray argument accepted")
	}
}
