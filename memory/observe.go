package memory

import "time"

// CommitInfo is one group commit as Config.OnCommit sees it: the records
// it made durable and how long the commit took — badger writes with
// SyncWrites, so Took is the fsync's latency as the writers waited for it.
type CommitInfo struct {
	Requests int           // Put and Import calls that shared the commit
	Records  int           // records stored (an import's duplicates are not)
	Took     time.Duration // the commit, fsync included
	Err      error         // nil: every record is durable
}

// observeCommit tells Config.OnCommit of a group commit that began at start.
func (db *DB) observeCommit(g *group, start time.Time, err error) {
	if db.cfg.OnCommit == nil {
		return
	}
	n := 0
	for _, r := range g.reqs {
		n += len(r.visible())
	}
	db.cfg.OnCommit(CommitInfo{Requests: len(g.reqs), Records: n, Took: time.Since(start), Err: err})
}
