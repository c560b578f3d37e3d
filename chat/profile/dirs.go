package profile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// appDir is pfschat's directory name inside the XDG data and state homes.
const appDir = "pfschat"

// File names inside those directories.
const (
	logFile     = "pfschat.log" // the UI's log, in the state directory
	demoLogFile = "demo.log"    // the demo's log, in the state directory
	relayDBFile = "relay.db"    // the relay's default database, in the data directory
)

// xdgDir follows the XDG base directory specification: $env when it holds an absolute
// path (a relative one is invalid per the specification and ignored), else fallback
// under the user's home directory; pfschat's own directory inside either.
func xdgDir(env, fallback string) (string, error) {
	if v := os.Getenv(env); v != "" && filepath.IsAbs(v) {
		return filepath.Join(v, appDir), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no absolute $%s and no home directory: %w", env, err)
	}
	return filepath.Join(home, fallback, appDir), nil
}

// DataDir is pfschat's data directory: $XDG_DATA_HOME/pfschat, default
// ~/.local/share/pfschat.
func DataDir() (string, error) { return xdgDir("XDG_DATA_HOME", filepath.Join(".local", "share")) }

// StateDir is pfschat's state directory (logs): $XDG_STATE_HOME/pfschat, default
// ~/.local/state/pfschat.
func StateDir() (string, error) {
	return xdgDir("XDG_STATE_HOME", filepath.Join(".local", "state"))
}

// Home is the profile directory: dir (the --home flag) when not empty, else
// $PFSCHAT_HOME, else DataDir.
func Home(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if dir := os.Getenv(EnvHome); dir != "" {
		return dir, nil
	}
	dir, err := DataDir()
	if err != nil {
		return "", fmt.Errorf("no profile directory: pass --home DIR or set %s (%w)", EnvHome, err)
	}
	return dir, nil
}

// LogFile is the UI's log file, in StateDir. The UI owns the terminal, so it logs here
// and never to the screen.
func LogFile() (string, error) { return inStateDir(logFile) }

// DemoLogFile is the demo's log file, beside the UI's.
func DemoLogFile() (string, error) { return inStateDir(demoLogFile) }

func inStateDir(name string) (string, error) {
	dir, err := StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// RelayDB is the relay's default database file, in DataDir (not in a profile: a relay
// is no one's profile, so $PFSCHAT_HOME does not move it).
func RelayDB() (string, error) {
	dir, err := DataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, relayDBFile), nil
}

// IsRelayFile reports whether a file named name in DataDir is one of the default relay
// database's (relay.db, SQLite's relay.db-wal and relay.db-shm, relay.db.blobs,
// relay.db.reserve, relay.db.lock): the default profile shares that directory, and a
// relay's files there are not the profile's.
func IsRelayFile(name string) bool {
	return name == relayDBFile || strings.HasPrefix(name, relayDBFile+"-") || strings.HasPrefix(name, relayDBFile+".")
}
