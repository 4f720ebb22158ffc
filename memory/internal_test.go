package memory

import "time"

// CommitsForTest exposes the number of badger commits (one fsync each) to
// the external tests and benchmarks.
func CommitsForTest(db *DB) uint64 { return db.commits.Load() }

// CommitDelayForTest is the CommitDelay db runs with, defaults applied.
func CommitDelayForTest(db *DB) time.Duration { return db.cfg.CommitDelay }
