package chattest_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNoProductionPackageImportsChattest: chattest is for tests only. No package of the
// binary (the module's non-test packages, the test helpers aside) may depend on it,
// directly or through another package.
func TestNoProductionPackageImportsChattest(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH; cannot list the packages' dependencies")
	}
	const self = "pfschat/chat/chattest"
	list := func(args ...string) []string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), goBin, append([]string{"list"}, args...)...)
		cmd.Dir = "../.." // the module root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
		}
		return strings.Fields(string(out))
	}
	var production []string
	for _, p := range list("./...") {
		// Test helper packages (chattest itself, relaytest) are imported by tests only.
		if p != self && !strings.HasSuffix(p, "test") {
			production = append(production, p)
		}
	}
	if !slices.Contains(production, "pfschat") || !slices.Contains(production, "pfschat/ui") {
		t.Fatalf("go list found %v; the binary's packages are missing", production)
	}
	// -deps lists every package the production packages need, without their tests.
	if deps := list(append([]string{"-deps"}, production...)...); slices.Contains(deps, self) {
		for _, p := range production {
			if slices.Contains(list("-deps", p), self) {
				t.Errorf("%s depends on %s, a package for tests only", p, self)
			}
		}
	}
}
