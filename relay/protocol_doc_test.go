package relay

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

// docErrorCodes returns the codes of PROTOCOL.md's error table ("### Errors": rows
// "| `code` | meaning | what to do |"), in order.
func docErrorCodes(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n### Errors\n")
	if start < 0 {
		t.Fatal(`PROTOCOL.md has no "### Errors" section`)
	}
	section := doc[start+1:]
	if end := strings.Index(section[1:], "\n#"); end >= 0 {
		section = section[:end+1]
	}
	header := regexp.MustCompile(`(?m)^\| code \| meaning \| what to do \|$`)
	if !header.MatchString(section) {
		t.Fatal(`the "Errors" section has no "| code | meaning | what to do |" table`)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\|")
	var codes []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) < 10 {
		t.Fatalf("found only %d rows in the error table: has its layout changed?", len(codes))
	}
	return codes
}

// packageErrorCodes returns the values of the Code* string constants this package
// declares (its non-test files), by constant name.
func packageErrorCodes(t *testing.T) map[string]string {
	t.Helper()
	return packageStringConsts(t, "Code")
}

// packageStringConsts returns the values of the string constants whose names start
// with prefix that this package declares (its non-test files), by constant name.
func packageStringConsts(t *testing.T, prefix string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
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
					if !strings.HasPrefix(n.Name, prefix) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: %s is not a string literal", fset.Position(n.Pos()), n.Name)
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					codes[n.Name] = v
				}
			}
		}
	}
	return codes
}

// TestProtocolDocErrorCodes keeps PROTOCOL.md's error table and the package's error
// codes in step: every code the table lists is a Code* constant, and every Code*
// constant (every code the relay can send: it sends no other) is in the table, once.
func TestProtocolDocErrorCodes(t *testing.T) {
	doc := docErrorCodes(t)
	pkg := packageErrorCodes(t)
	defined := map[string]string{} // value -> constant
	for name, v := range pkg {
		if other, dup := defined[v]; dup {
			t.Errorf("%s and %s are both %q", name, other, v)
		}
		defined[v] = name
	}
	seen := map[string]bool{}
	for _, c := range doc {
		if seen[c] {
			t.Errorf("PROTOCOL.md lists %q twice", c)
		}
		seen[c] = true
		if _, ok := defined[c]; !ok {
			t.Errorf("PROTOCOL.md lists %q, which package relay does not define", c)
		}
	}
	var missing []string
	for v, name := range defined {
		if !seen[v] {
			missing = append(missing, name+" ("+v+")")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("%s is not in PROTOCOL.md's error table", m)
	}
	// The constants this test finds are the ones the code uses: spot-check a few, so
	// that a change of how they are declared cannot make it pass vacuously.
	for name, v := range map[string]string{"CodeBadFrame": CodeBadFrame, "CodeUnavailable": CodeUnavailable,
		"CodeBlobDigestMismatch": CodeBlobDigestMismatch, "CodeNoRecovery": CodeNoRecovery} {
		if pkg[name] != v {
			t.Errorf("the parse found %s = %q, want %q", name, pkg[name], v)
		}
	}
}
