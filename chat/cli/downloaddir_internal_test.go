package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What recv says of a --download-dir files cannot be saved into, made of nothing it
// creates: the regular file in the way is named (it said ".../regular-file/sub: not a
// directory"), a directory that exists and takes no file is not "no such file or
// directory" (/proc/self), and a directory still to be made is not made.
func TestDownloadDirProblem(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "regular-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ dir, want string }{
		{filepath.Join(file, "sub"), file + " is a file, not a directory"},
		{filepath.Join(file, "sub", "deeper"), file + " is a file, not a directory"},
		{file, file + " is a file, not a directory"},
		{filepath.Join(tmp, "new", "inbox"), ""},
		{tmp, ""},
	}
	if st, err := os.Stat("/proc/self"); err == nil && st.IsDir() {
		cases = append(cases,
			struct{ dir, want string }{"/proc/self", "/proc/self is a directory files cannot be written to"},
			struct{ dir, want string }{"/proc/self/sub", "it cannot be made in /proc/self, where files cannot be written"})
	}
	for _, tc := range cases {
		if got := downloadDirProblem(tc.dir); got != tc.want {
			t.Errorf("downloadDirProblem(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "new")); !os.IsNotExist(err) {
		t.Errorf("checking a directory to be made made something: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 1 {
		t.Errorf("checking left %d entries in %s, want only regular-file", len(left), tmp)
	}
	for _, tc := range cases {
		if strings.Contains(downloadDirProblem(tc.dir), "no such file") {
			t.Errorf("%s: says no such file", tc.dir)
		}
	}
}
