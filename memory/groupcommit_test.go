package memory_test

import (
	"context"
	"fmt"
	"strings"
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

// TestGroupOverflow makes concurrent Puts that together exceed one badger
// transaction, so the committer must split the group: every Put still
// succeeds whole, and Seqs stay dense and ordered.
func TestGroupOverflow(t *testing.T) {
	db := openDB(t, memory.Config{})
	defer db.Close()
	const writers, per = 24, 200
	text := strings.Repeat("z", 1000)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			recs := make([]memory.Record, per)
			for i := range recs {
				recs[i] = memory.Record{Namespace: fmt.Sprintf("agent/w%d", w), Kind: memory.KindReading, Text: text}
			}
			out, err := db.Put(context.Background(), recs...)
			if err != nil {
				t.Error(err)
				return
			}
			for i := 1; i < len(out); i++ {
				if out[i].Seq != out[i-1].Seq+1 {
					t.Errorf("one Put's records are not contiguous: %d after %d", out[i].Seq, out[i-1].Seq)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := db.LastSeq(); got != writers*per {
		t.Errorf("LastSeq = %d, want %d", got, writers*per)
	}
	n := 0
	for _, err := range db.Query(context.Background(), memory.Query{Namespace: "agent"}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != writers*per {
		t.Errorf("stored %d records, want %d", n, writers*per)
	}
}
