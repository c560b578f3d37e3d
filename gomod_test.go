package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestGoDirectiveIsTheMinimum checks that go.mod's go line names the lowest Go release the
// code needs — the highest go directive among the dependencies — so that any release from
// that one on builds offline without downloading a toolchain, and that the README names
// the same version beside the first commands.
func TestGoDirectiveIsTheMinimum(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	ours := string(m[1])

	cmd := exec.Command("go", "list", "-mod=readonly", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.GoVersion}}{{end}}{{end}}", "./...")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	need, by := "1.0", ""
	for _, line := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && versionLess(need, f[1]) {
			need, by = f[1], f[0]
		}
	}
	if ours != need {
		t.Errorf("go.mod says go %s; the dependencies need go %s (%s): the go line should name exactly that", ours, need, by)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	head := string(readme)
	if i := strings.Index(head, "\n## "); i > 0 {
		head = head[:i]
	}
	if !strings.Contains(head, "Go "+ours) {
		t.Errorf("the README's opening does not name Go %s", ours)
	}
	if !strings.Contains(head, "go build -v") {
		t.Errorf("the README's opening does not say how to see the first build's progress (go build -v)")
	}
}

// versionLess compares dotted Go versions numerically ("1.26" < "1.26.0" < "1.26.7").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		if i >= len(as) {
			return true
		}
		if i >= len(bs) {
			return false
		}
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x < y
		}
	}
	return false
}
