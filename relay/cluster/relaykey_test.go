package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/storage"
)

// TestLoadSealKey: a cluster's key loads as storage.LoadRelayKey reads it (tested
// there), and its absence is an error saying both ways to give it; NewDirectory
// refuses a key of the wrong size.
func TestLoadSealKey(t *testing.T) {
	good := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(good, []byte(storage.GenerateRelayKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadSealKey(good)
	if err != nil || len(k) != SealKeySize {
		t.Fatalf("load: %x %v", k, err)
	}
	t.Setenv(SealKeyEnv, "") // restored after the test
	os.Unsetenv(SealKeyEnv)
	if _, err := LoadSealKey(""); !errors.Is(err, ErrSealKey) || !strings.Contains(err.Error(), "--relay-key-file") || !strings.Contains(err.Error(), SealKeyEnv) {
		t.Fatalf("neither: %v", err)
	}
	if _, err := NewDirectory(testCtx(t), nil, DirOptions{SealKey: k[:16]}); !errors.Is(err, ErrSealKey) {
		t.Fatalf("a short key to NewDirectory: %v", err)
	}
}
