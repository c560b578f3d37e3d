//go:build race

package cluster

// raceOn: the race detector makes each round of the many-round race tests several
// times slower, and the deterministic tests in relay/server cover the same windows.
const raceOn = true
