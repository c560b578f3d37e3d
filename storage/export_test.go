package storage

// Test-only access to internals.

// testKDF keeps tests fast; one test (and BenchmarkUnlock) uses DefaultKDF.
var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func (c *Client) setHook(h func(step int) error) { c.db.hook = h }
func (c *Client) storageKey() []byte             { return c.keys.key }

// UseDriver makes the stores opened from now on use the database/sql driver registered
// as name (one that wraps modernc.org/sqlite); the returned func restores the default.
func UseDriver(name string) (restore func()) {
	old := driverName
	driverName = name
	return func() { driverName = old }
}
