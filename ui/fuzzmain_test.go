package ui

import (
	"flag"
	"os"
	"testing"
)

// TestMain caps fuzz minimization by count, as ratchet's does (its fuzzMinimizeBudget
// has the measurements), at 5,000 runs since one render costs far more than a ratchet
// decode. With go test's default of 60 s per input, a short FuzzRenderMessage run spent
// its last seconds minimizing a long message and failed with "context deadline
// exceeded". Minimizing only shortens corpus entries; it checks nothing.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		given := false
		flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
		if !given {
			if err := flag.Set("test.fuzzminimizetime", "5000x"); err != nil {
				panic("ui: setting -test.fuzzminimizetime: " + err.Error())
			}
		}
	}
	os.Exit(m.Run())
}
