package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

var codeRE = regexp.MustCompile(`recovery code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){7})\n`)

// init shows a recovery code once; `pfschat recover NAME` on another home gets the
// name back with it (from a prompt or --recovery-code-file) and shows the next code;
// `pfschat recovery-code --rotate` replaces it. Wrong codes fail with a sentence and
// leave no profile.
func TestRecoverCommands(t *testing.T) {
	r := relaytest.Start(t)
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	run := func(home, stdin string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		rc := cli.Main(t.Context(), append([]string{"--home", home, "--relay", r.URL}, args...), strings.NewReader(stdin), &out, &errOut)
		return rc, out.String(), errOut.String()
	}
	home1 := t.TempDir()
	rc, out, msg := run(home1, "", "init", "--name", "alice")
	m := codeRE.FindStringSubmatch(out)
	if rc != 0 || m == nil || !strings.Contains(out, "shown once") {
		t.Fatalf("init: exit %d, out %q, err %q: no recovery code shown", rc, out, msg)
	}
	code := m[1]

	// A typo is caught before anything is sent; a wrong code is refused; no profile.
	home2 := filepath.Join(t.TempDir(), "new")
	typo := "Z" + code[1:]
	if typo == code {
		typo = "Y" + code[1:]
	}
	if rc, _, msg := run(home2, typo+"\n", "recover", "alice"); rc == 0 || !strings.Contains(msg, "checksum") {
		t.Fatalf("recover with a typo: exit %d, %q", rc, msg)
	}
	if _, err := os.Stat(filepath.Join(home2, "pfschat.db")); err == nil {
		t.Fatal("a refused recovery left a profile")
	}
	if rc, _, msg := run(home2, "", "recover"); rc != 2 {
		t.Fatalf("recover without a name: exit %d, %q", rc, msg)
	}
	// A name the relay does not know is the user's own, misspelt or on another relay:
	// not someone to ask to run init (seen in the identity walk).
	if rc, _, msg := run(home2, code+"\n", "recover", "alicee"); rc != 1 || !strings.Contains(msg, "check the spelling of your name") ||
		!strings.Contains(msg, "--relay") || strings.Contains(msg, "ask them") {
		t.Fatalf("recover of an unknown name: exit %d, %q", rc, msg)
	}
	if _, err := os.Stat(home2); !os.IsNotExist(err) { // nor its lock, nor the folder
		t.Fatalf("recovering an unknown name left the new home behind: %v", err)
	}

	// From a file (the prompt was read above: the typo came from it); one that group
	// or others may read is refused before anything is sent.
	file := filepath.Join(t.TempDir(), "code.txt")
	if err := os.WriteFile(file, []byte(strings.ToLower(code)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if rc, _, msg := run(home2, "", "recover", "alice", "--recovery-code-file", file); rc != 1 ||
		!strings.Contains(msg, "recovery code file "+file+" is readable or writable by group or others (mode 0644)") ||
		!strings.Contains(msg, "chmod 600 "+file) {
		t.Fatalf("recover with a code file others can read: exit %d, %q", rc, msg)
	}
	if _, err := os.Stat(filepath.Join(home2, "pfschat.db")); err == nil {
		t.Fatal("a refused code file left a profile")
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	// A new passphrase shorter than onboarding allows is refused before anything is
	// sent: no profile, and the code is not spent (it works just below).
	t.Setenv(profile.EnvPassphrase, "short")
	if rc, _, msg := run(home2, "", "recover", "alice", "--recovery-code-file", file); rc != 1 ||
		!strings.Contains(msg, "$PFSCHAT_PASSPHRASE is too short (5 characters): use at least 8 characters: the passphrase protects your keys and history on this machine; nothing was created") {
		t.Fatalf("recover with a short passphrase: exit %d, %q", rc, msg)
	}
	if _, err := os.Stat(filepath.Join(home2, "pfschat.db")); err == nil {
		t.Fatal("a refused passphrase left a profile")
	}
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	rc, out, msg = run(home2, "", "recover", "alice", "--recovery-code-file", file)
	m = codeRE.FindStringSubmatch(out)
	if rc != 0 || m == nil || m[1] == code {
		t.Fatalf("recover: exit %d, out %q, err %q", rc, out, msg)
	}
	next := m[1]

	// The spent code fails.
	home3 := filepath.Join(t.TempDir(), "third")
	if rc, _, msg := run(home3, code+"\n", "recover", "alice"); rc == 0 || !strings.Contains(msg, "refused the recovery code") {
		t.Fatalf("recover with the spent code: exit %d, %q", rc, msg)
	}
	// recovery-code --rotate on the recovered profile replaces next, which then fails.
	rc, out, msg = run(home2, "", "recovery-code", "--rotate")
	m = codeRE.FindStringSubmatch(out)
	if rc != 0 || m == nil || m[1] == next {
		t.Fatalf("recovery-code --rotate: exit %d, out %q, err %q", rc, out, msg)
	}
	if rc, _, msg := run(home3, next+"\n", "recover", "alice"); rc == 0 || !strings.Contains(msg, "refused the recovery code") {
		t.Fatalf("recover with the rotated-away code: exit %d, %q", rc, msg)
	}
	// Without --rotate the command explains.
	if rc, out, _ := run(home3, "", "recovery-code"); rc != 0 || !strings.Contains(out, "--rotate") {
		t.Fatalf("recovery-code: exit %d, %q", rc, out)
	}
}

// `pfschat reset-identity` gives the profile a new key, after the name is typed.
func TestResetIdentityCommand(t *testing.T) {
	r := relaytest.Start(t)
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	home := t.TempDir()
	run := func(stdin string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		rc := cli.Main(t.Context(), append([]string{"--home", home, "--relay", r.URL}, args...), strings.NewReader(stdin), &out, &errOut)
		return rc, out.String(), errOut.String()
	}
	if rc, _, msg := run("", "init", "--name", "alice"); rc != 0 {
		t.Fatalf("init: exit %d, %s", rc, msg)
	}
	rc, out, msg := run("alice\n", "reset-identity")
	if rc != 0 || !strings.Contains(out, "new fingerprint") {
		t.Fatalf("reset-identity: exit %d, out %q, err %q", rc, out, msg)
	}
}
