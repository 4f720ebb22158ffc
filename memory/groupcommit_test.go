package memory_test

import (
	"context"
	"sync"
	"testing"

	"github.com/depai/depai/memory"
)

// TestGroupCommit checks that concurrent Puts share commits (and so
// fsyncs): 64 writers each waiting for durability must not cost one fsync
// per Put.
func TestGroupCommit(t *testing.T) {
	db := openDB(t, memory.Config{})
	defer db.Close()
	const writers, each = 64, 20
	before := memory.CommitsForTest(db)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if _, err := db.Put(context.Background(), memory.Record{Namespace: "shared", Kind: memory.KindReading, Text: "x"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	commits := memory.CommitsForTest(db) - before
	t.Logf("%d Puts in %d commits (%.1f per fsync)", writers*each, commits, float64(writers*each)/float64(commits))
	if commits == 0 || commits > writers*each/4 {
		t.Errorf("%d Puts took %d commits; group commit should need far fewer", writers*each, commits)
	}
}
