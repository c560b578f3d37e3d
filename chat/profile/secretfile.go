package profile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// SecretFileModeError: a file named for a secret (--passphrase-file,
// --new-passphrase-file, --recovery-code-file) is readable or writable by group or
// others. It is refused, as ssh refuses such a private key: anyone else who can read
// it has the secret, and anyone who can write it can choose the passphrase a new
// profile is sealed with.
type SecretFileModeError struct {
	What string      // what the file holds: "passphrase file"
	Path string      // as given
	Mode fs.FileMode // the permission bits of the file the path leads to
	// Instead is the other way to give the secret, named in the advice.
	Instead string
}

func (e *SecretFileModeError) Error() string {
	return fmt.Sprintf("the %s %s is readable or writable by group or others (mode %04o), and it holds a secret; "+
		"run chmod 600 %s (a Docker or Kubernetes secret is mounted 0444 or 0644 unless you set its mode to 0400), or %s",
		e.What, e.Path, e.Mode, e.Path, e.Instead)
}

// permissionBitsMeanAccess: on Windows the permission bits say only whether a file is
// read-only, nothing about who else may read it.
const permissionBitsMeanAccess = runtime.GOOS != "windows"

// readSecretFile reads the secret file at path (following symlinks: the mode checked
// is the mode of the file that is read, taken from the same open file). what names
// the file in errors; instead is the advice for giving the secret another way.
func readSecretFile(path, what, instead string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	if permissionBitsMeanAccess && fi.Mode().Perm()&0o077 != 0 {
		return nil, &SecretFileModeError{What: what, Path: path, Mode: fi.Mode().Perm(), Instead: instead}
	}
	// Bounded: a secret is a line, and the path may be a device or a pipe that never
	// ends (a process substitution, <(pass show pfschat), is a fine way to give one).
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	if len(b) > maxSecretFile {
		clear(b)
		return nil, fmt.Errorf("the %s %s holds more than %d KiB; a secret is one line: is it the right file?", what, path, maxSecretFile>>10)
	}
	return b, nil
}

// maxSecretFile bounds what a secret file may hold.
const maxSecretFile = 64 << 10

// ReadRecoveryCodeFile reads the file given to --recovery-code-file, refusing one
// readable or writable by group or others (SecretFileModeError).
func ReadRecoveryCodeFile(path string) ([]byte, error) {
	return readSecretFile(path, "recovery code file", "leave out --recovery-code-file and type the code when asked")
}
