package server

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestProtocolDocLimitNames keeps PROTOCOL.md's tables of named abuse limits ("| name |
// default | applies to | answer |", in "Limits and abuse" and in recovery's "Limits")
// and the limits the relay counts in pfschat_relay_limited_total in step, both ways.
func TestProtocolDocLimitNames(t *testing.T) {
	b, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	header := "| name | default | applies to | answer |"
	row := regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|")
	var doc []string
	tables := 0
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == header:
			in, tables = true, tables+1
		case in && strings.HasPrefix(line, "|---"):
		case in && strings.HasPrefix(line, "|"):
			m := row.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("a limit table row without a name: %q", line)
			}
			doc = append(doc, m[1])
		default:
			in = false
		}
	}
	if tables != 2 {
		t.Fatalf("found %d limit tables in PROTOCOL.md, want 2 (Limits and abuse; recovery's Limits)", tables)
	}
	code := slices.Clone(metricLimitNames[:])
	slices.Sort(doc)
	slices.Sort(code)
	if !slices.Equal(doc, code) {
		t.Fatalf("PROTOCOL.md names the limits\n%v\nthe relay counts\n%v", doc, code)
	}
}
