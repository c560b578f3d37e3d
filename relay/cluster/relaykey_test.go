package cluster

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadSealKey: a key file of 64 hex digits (white space around it ignored) loads;
// one readable by others, a malformed one and a missing one are refused naming what
// to do; without a file the environment variable is read, and its absence is an
// error saying both ways.
func TestLoadSealKey(t *testing.T) {
	dir := t.TempDir()
	text := GenerateSealKey()
	if len(text) != 64 || text == GenerateSealKey() {
		t.Fatalf("generated %q", text)
	}
	good := filepath.Join(dir, "key")
	if err := os.WriteFile(good, []byte("  "+text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadSealKey(good)
	if err != nil || len(k) != SealKeySize {
		t.Fatalf("load: %x %v", k, err)
	}
	again, _ := ParseSealKey(text)
	if !bytes.Equal(k, again) {
		t.Fatal("file and text differ")
	}
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte(text), 0o644)
	if _, err := LoadSealKey(open); !errors.Is(err, ErrSealKey) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte(text[:60]), 0o600)
	if _, err := LoadSealKey(bad); !errors.Is(err, ErrSealKey) {
		t.Fatalf("a short key: %v", err)
	}
	if _, err := LoadSealKey(filepath.Join(dir, "missing")); !errors.Is(err, ErrSealKey) {
		t.Fatalf("a missing file: %v", err)
	}
	t.Setenv(SealKeyEnv, text)
	if k, err := LoadSealKey(""); err != nil || !bytes.Equal(k, again) {
		t.Fatalf("from the environment: %v", err)
	}
	os.Unsetenv(SealKeyEnv)
	if _, err := LoadSealKey(""); !errors.Is(err, ErrSealKey) || !strings.Contains(err.Error(), "--relay-key-file") || !strings.Contains(err.Error(), SealKeyEnv) {
		t.Fatalf("neither: %v", err)
	}
	if _, err := NewDirectory(testCtx(t), nil, DirOptions{SealKey: k[:16]}); !errors.Is(err, ErrSealKey) {
		t.Fatalf("a short key to NewDirectory: %v", err)
	}
}
