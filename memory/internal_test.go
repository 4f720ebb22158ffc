package memory

// CommitsForTest exposes the number of badger commits (one fsync each) to
// the external tests and benchmarks.
func CommitsForTest(db *DB) uint64 { return db.commits.Load() }
