package cli_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pfschat/chat/cli"
	"pfschat/chat/profile"
	"pfschat/relay/relaytest"
)

// openPTY opens a pseudo-terminal pair: what is written to master is typed on slave,
// what slave's line discipline echoes or a program writes to it is read from master.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// `pfschat recover NAME` reads the code typed on a terminal without echoing it (it
// takes the name for whoever sees it), and still reads it as one line from a pipe.
func TestRecoverCodeIsNotEchoed(t *testing.T) {
	r := relaytest.Start(t)
	t.Setenv(profile.EnvPassphrase, "correct horse battery staple")
	recover := func(home string, stdin io.Reader) (int, string, string) {
		var out, errOut bytes.Buffer
		rc := cli.Main(t.Context(), []string{"--home", home, "--relay", r.URL, "recover", "alice"}, stdin, &out, &errOut)
		return rc, out.String(), errOut.String()
	}
	var out, errOut bytes.Buffer
	if rc := cli.Main(t.Context(), []string{"--home", t.TempDir(), "--relay", r.URL, "init", "--name", "alice"}, strings.NewReader(""), &out, &errOut); rc != 0 {
		t.Fatalf("init: exit %d, %s", rc, errOut.String())
	}
	m := codeRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("init showed no recovery code: %q", out.String())
	}

	// From a pipe: a script's stdin, not a terminal.
	pipeRead, pipeWrite, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeRead.Close()
	if _, err := pipeWrite.WriteString(m[1] + "\n"); err != nil {
		t.Fatal(err)
	}
	pipeWrite.Close()
	rc, stdout, stderr := recover(filepath.Join(t.TempDir(), "piped"), pipeRead)
	if m = codeRE.FindStringSubmatch(stdout); rc != 0 || m == nil || !strings.Contains(stdout, "recovered alice") {
		t.Fatalf("recover from a pipe: exit %d, out %q, err %q", rc, stdout, stderr)
	}

	// From a terminal: typed once echo is off (the program turns it off once it asks).
	master, slave := openPTY(t)
	slaveFD := int(slave.Fd())
	type result struct {
		rc          int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		rc, out, errOut := recover(filepath.Join(t.TempDir(), "typed"), slave)
		done <- result{rc, out, errOut}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; {
		tio, err := unix.IoctlGetTermios(slaveFD, unix.TCGETS)
		if err != nil {
			t.Fatalf("reading the terminal's mode: %v", err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("recover did not turn the terminal's echo off within 30 s to read the code")
		}
		time.Sleep(time.Millisecond) // polling interval of the terminal's mode
	}
	typed := m[1]
	if _, err := master.WriteString(typed + "\n"); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.rc != 0 || !strings.Contains(res.out, "recovered alice") || codeRE.FindStringSubmatch(res.out) == nil {
		t.Fatalf("recover from a terminal: exit %d, out %q, err %q", res.rc, res.out, res.errOut)
	}
	// Everything the terminal showed comes before this mark.
	const mark = "--end of the screen--"
	if _, err := slave.WriteString(mark + "\n"); err != nil {
		t.Fatal(err)
	}
	var screen []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(screen, []byte(mark)) {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("reading the terminal: %v (so far %q)", err, screen)
		}
		screen = append(screen, buf[:n]...)
	}
	if bytes.Contains(screen, []byte(typed)) {
		t.Fatalf("the recovery code was echoed on the terminal: %q", screen)
	}
}

// accept-key and recv with the relay down ask for the passphrase once (they used to
// unlock the profile, fail to connect, and ask again to go on offline). The
// passphrase is typed ahead twice: a command that asked twice would take both.
func TestRelayDownAsksForThePassphraseOnce(t *testing.T) {
	w := startKeyChangeWalk(t)
	w.r.Close()
	pass := os.Getenv(profile.EnvPassphrase)
	os.Unsetenv(profile.EnvPassphrase) // startKeyChangeWalk's t.Setenv puts it back
	for _, c := range []struct {
		args   []string
		rc     int
		stdout string
	}{
		{[]string{"accept-key", "bob"}, 0, "accepted bob's new key"},
		{[]string{"recv"}, 1, ""},
	} {
		master, slave := openPTY(t)
		if _, err := master.WriteString(pass + "\n" + pass + "\n"); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		rc := cli.Main(t.Context(), append([]string{"--home", w.alice, "--relay", w.r.URL}, c.args...), slave, &out, &errOut)
		if rc != c.rc || !strings.Contains(out.String(), c.stdout) || !strings.Contains(errOut.String(), "relay") {
			t.Fatalf("%v with the relay down: exit %d, out %q, err %q", c.args, rc, out.String(), errOut.String())
		}
		if n := strings.Count(errOut.String(), "passphrase for alice ("+w.alice+"): "); n != 1 {
			t.Errorf("%v with the relay down asked for the passphrase %d times: %q", c.args, n, errOut.String())
		}
	}
}
