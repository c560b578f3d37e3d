package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestProtocolDocLimitNames keeps the limits PROTOCOL.md names and the limits the relay
// counts in pfschat_relay_limited_total in step, both ways: the rows of its tables of
// named abuse limits ("| name | default | applies to | answer |", in "Limits and abuse"
// and in recovery's "Limits"), and the rows of its other limit tables ("| limit |
// default | error |") whose limit is a name (the blob limits; "frame size" and the like
// are described, not named). A named limit without its own label would be counted as
// "other".
func TestProtocolDocLimitNames(t *testing.T) {
	b, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	const abuseHeader, limitHeader = "| name | default | applies to | answer |", "| limit | default | error |"
	row := regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|")
	var doc []string
	abuseTables, limitTables := 0, 0
	in := ""
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == abuseHeader:
			in, abuseTables = abuseHeader, abuseTables+1
		case line == limitHeader:
			in, limitTables = limitHeader, limitTables+1
		case in != "" && strings.HasPrefix(line, "|---"):
		case in != "" && strings.HasPrefix(line, "|"):
			m := row.FindStringSubmatch(line)
			if m == nil {
				if in == abuseHeader {
					t.Fatalf("a limit table row without a name: %q", line)
				}
				continue
			}
			doc = append(doc, m[1])
		default:
			in = ""
		}
	}
	if abuseTables != 2 {
		t.Fatalf("found %d tables of named limits in PROTOCOL.md, want 2 (Limits and abuse; recovery's Limits)", abuseTables)
	}
	if limitTables < 2 {
		t.Fatalf("found %d \"| limit | default | error |\" tables in PROTOCOL.md, want 2 (Limits; Blobs)", limitTables)
	}
	code := slices.Clone(metricLimitNames[:])
	slices.Sort(doc)
	slices.Sort(code)
	if !slices.Equal(doc, code) {
		t.Fatalf("PROTOCOL.md names the limits\n%v\nthe relay counts\n%v", doc, code)
	}
	for _, name := range []string{LimitMaxBlobBytes, LimitBlobQuotaBytes, LimitSenderQuota} { // not vacuous
		if !slices.Contains(doc, name) {
			t.Errorf("the parse of PROTOCOL.md missed %q", name)
		}
	}
}

// TestEveryLimitConstantIsCounted: every Limit* constant of the package (the names the
// relay puts in error frames and passes to metrics.limited) has its own label in
// pfschat_relay_limited_total.
func TestEveryLimitConstantIsCounted(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{} // constant -> value
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Limit") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					found[n.Name] = v
				}
			}
		}
	}
	if found["LimitMaxBlobBytes"] != LimitMaxBlobBytes || found["LimitRecoveryPerName"] != LimitRecoveryPerName {
		t.Fatalf("the parse found %v; it misses constants the package declares", found)
	}
	for name, v := range found {
		if !slices.Contains(metricLimitNames[:], v) {
			t.Errorf("%s (%q) is not in metricLimitNames: /metrics counts it as \"other\"", name, v)
		}
	}
}
