package server

import (
	"strings"
	"testing"
)

// FuzzParseTrustedProxies: --trusted-proxies never panics, gives masked, valid
// prefixes, and the prefixes it gives parse back to themselves.
func FuzzParseTrustedProxies(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8", "10.0.0.1", "::1", "::ffff:10.0.0.1", "10.0.0.0/8, 192.168.1.7 ,fd00::/8",
		"", ",", "10.0.0.0/33", "fe80::1%eth0", "1.2.3.4/0", "x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		ps, err := ParseTrustedProxies(list)
		if err != nil {
			return
		}
		parts := make([]string, len(ps))
		for i, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("%q gives prefix %v", list, p)
			}
			parts[i] = p.String()
		}
		again, err := ParseTrustedProxies(strings.Join(parts, ","))
		if err != nil || len(again) != len(ps) {
			t.Fatalf("%q: %v re-parses to %v, %v", list, ps, again, err)
		}
		for i := range ps {
			if again[i] != ps[i] {
				t.Fatalf("%q: %v re-parses to %v", list, ps, again)
			}
		}
	})
}
