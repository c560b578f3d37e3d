package cli

import (
	"testing"
)

// BenchmarkStartDemo: the demo's setup in this process (relay, two throwaway profiles,
// contacts), without the UI or the process start; for a CPU profile of what the first
// frame waits for:
//
//	go test ./chat/cli -run '^$' -bench StartDemo -benchtime 20x -cpuprofile demo.cpu
func BenchmarkStartDemo(b *testing.B) {
	for b.Loop() {
		d, err := StartDemo(b.Context(), b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
