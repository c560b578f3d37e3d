package profile

import (
	"path/filepath"
	"testing"
)

// The XDG rules, as every command applies them: absolute $XDG_* values are used,
// relative ones ignored (the specification calls them invalid), --home wins over
// $PFSCHAT_HOME, which wins over the data directory; the relay's database and the logs
// never follow $PFSCHAT_HOME.
func TestDirsFollowXDG(t *testing.T) {
	home, data, state := t.TempDir(), t.TempDir(), t.TempDir()
	tests := []struct {
		name                   string
		xdgData, xdgState, env string // $XDG_DATA_HOME, $XDG_STATE_HOME, $PFSCHAT_HOME
		flag                   string // --home
		wantHome, wantLog      string
		wantRelayDB            string
	}{
		{name: "absolute XDG values are used", xdgData: data, xdgState: state, env: "",
			wantHome: filepath.Join(data, "pfschat"), wantLog: filepath.Join(state, "pfschat", "pfschat.log"),
			wantRelayDB: filepath.Join(data, "pfschat", "relay.db")},
		{name: "--home replaces the data directory", xdgData: data, xdgState: state, env: "", flag: "/somewhere/else",
			wantHome: "/somewhere/else", wantLog: filepath.Join(state, "pfschat", "pfschat.log"),
			wantRelayDB: filepath.Join(data, "pfschat", "relay.db")},
		{name: "relative XDG values are ignored", xdgData: "relative/dir", xdgState: "relative/state", env: "",
			wantHome: filepath.Join(home, ".local/share/pfschat"), wantLog: filepath.Join(home, ".local/state/pfschat/pfschat.log"),
			wantRelayDB: filepath.Join(home, ".local/share/pfschat/relay.db")},
		{name: "unset XDG values mean the defaults", xdgData: unset, xdgState: unset, env: unset,
			wantHome: filepath.Join(home, ".local/share/pfschat"), wantLog: filepath.Join(home, ".local/state/pfschat/pfschat.log"),
			wantRelayDB: filepath.Join(home, ".local/share/pfschat/relay.db")},
		{name: "PFSCHAT_HOME is the profile directory", xdgData: data, xdgState: state, env: "/from/env",
			wantHome: "/from/env", wantLog: filepath.Join(state, "pfschat", "pfschat.log"),
			wantRelayDB: filepath.Join(data, "pfschat", "relay.db")},
		{name: "--home wins over PFSCHAT_HOME", xdgData: data, xdgState: state, env: "/from/env", flag: "/flag/wins",
			wantHome: "/flag/wins", wantLog: filepath.Join(state, "pfschat", "pfschat.log"),
			wantRelayDB: filepath.Join(data, "pfschat", "relay.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			for name, v := range map[string]string{"XDG_DATA_HOME": tt.xdgData, "XDG_STATE_HOME": tt.xdgState, EnvHome: tt.env} {
				setenv(t, name, v)
			}
			f := Flags{Home: tt.flag}
			if got, err := f.HomeDir(); err != nil || got != tt.wantHome {
				t.Errorf("HomeDir = %q, %v; want %q", got, err, tt.wantHome)
			}
			if got, err := LogFile(); err != nil || got != tt.wantLog {
				t.Errorf("LogFile = %q, %v; want %q", got, err, tt.wantLog)
			}
			if got, err := DemoLogFile(); err != nil || got != filepath.Join(filepath.Dir(tt.wantLog), "demo.log") {
				t.Errorf("DemoLogFile = %q, %v; want it beside %q", got, err, tt.wantLog)
			}
			if got, err := RelayDB(); err != nil || got != tt.wantRelayDB {
				t.Errorf("RelayDB = %q, %v; want %q", got, err, tt.wantRelayDB)
			}
		})
	}
}

// Without a home directory and without absolute XDG values there is no default: the
// error says what to pass, and --home still works.
func TestDirsWithoutHomeDirectory(t *testing.T) {
	t.Setenv("HOME", "")
	t.Setenv("XDG_DATA_HOME", "relative")
	t.Setenv(EnvHome, "")
	if _, err := Home(""); err == nil {
		t.Fatal("Home without any directory: no error")
	} else if want := "pass --home DIR or set " + EnvHome; !contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if _, err := RelayDB(); err == nil {
		t.Fatal("RelayDB without any directory: no error")
	}
	if got, err := Home("/given"); err != nil || got != "/given" {
		t.Fatalf("Home(--home) = %q, %v", got, err)
	}
}
