package daemon

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// File names inside a profile directory.
const (
	SocketFile = "pfschat.sock"        // the owner's JSON-RPC socket
	SecretFile = "pfschat.http-secret" // the HTTP API's bearer secret, beside the socket
)

// maxSocketPath is the longest socket path used as is: sun_path holds 108 bytes on
// Linux and 104 on the BSDs and macOS, including the terminating NUL.
const maxSocketPath = 103

// SocketPath is the owner's socket for the profile in dir: dir/pfschat.sock, or, when
// that path is too long for a UNIX socket address, a short path derived from the
// profile's absolute path in a private directory of this user's
// ($XDG_RUNTIME_DIR/pfschat, else $TMPDIR/pfschat-UID, created 0700 and refused unless
// it is this user's and private). Every process computes the same path for the same
// profile.
func SocketPath(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	p := filepath.Join(abs, SocketFile)
	if len(p) <= maxSocketPath {
		return p, nil
	}
	base := filepath.Join(os.TempDir(), fmt.Sprintf("pfschat-%d", os.Getuid()))
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" && filepath.IsAbs(rt) {
		base = filepath.Join(rt, "pfschat")
	}
	if err := privateDir(base); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	p = filepath.Join(base, hex.EncodeToString(sum[:12])+".sock")
	if len(p) > maxSocketPath {
		return "", fmt.Errorf("no short socket path for profile %s: %s is too long too; set XDG_RUNTIME_DIR or TMPDIR to a short directory", abs, p)
	}
	return p, nil
}

// SecretPath is the HTTP secret's file, beside the socket.
func SecretPath(socket string) string {
	if filepath.Base(socket) == SocketFile {
		return filepath.Join(filepath.Dir(socket), SecretFile)
	}
	return strings.TrimSuffix(socket, ".sock") + ".http-secret"
}

// privateDir makes dir (0700) or checks that the existing one is a directory of this
// user's that no one else can enter.
func privateDir(dir string) error {
	if !ownersKnown {
		return fmt.Errorf("socket directory %s: the daemon runs only where pfschat can check that a directory is this user's alone (Linux, macOS, the BSDs): %w", dir, errors.ErrUnsupported)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if !fi.IsDir() || !ownedByMe(fi) || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("socket directory %s is not a private directory of this user's (want mode 0700, owner uid %d); remove it", dir, os.Getuid())
	}
	return nil
}

// Listen listens on the socket path, mode 0600. Call it only while holding the
// profile's lock: a socket file left there by a crashed owner is removed first (no
// live owner can be behind it, since the lock is ours).
func Listen(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing the old socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	// The directory is private (0700) already; the socket is the owner's alone too.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}

// NewSecret writes a fresh random HTTP secret (32 bytes from crypto/rand, base64url) to
// path, mode 0600, replacing any old one, and returns it.
func NewSecret(path string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("HTTP secret: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("HTTP secret: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("HTTP secret: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("HTTP secret: %w", err)
	}
	return secret, nil
}
