package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/depai/depai/memory"
)

func TestPutOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, memory.Config{Dir: dir})
	recs := []memory.Record{
		{Namespace: "shared", Kind: memory.KindMessage, Text: "move to dock 3"},
		{Namespace: "shared", Kind: memory.KindAudit, Text: "allowed: move to dock 3"},
	}
	first, isFirst, err := db.PutOnce(ctx, "req-1", recs...)
	if err != nil || !isFirst || len(first) != 2 {
		t.Fatalf("first PutOnce = %d records, first %v, %v", len(first), isFirst, err)
	}
	// Retries, concurrent ones among them, store nothing and return the first records.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			again, isFirst, err := db.PutOnce(ctx, "req-1", recs...)
			if err != nil || isFirst || len(again) != 2 || again[0].ID != first[0].ID || again[1].ID != first[1].ID {
				t.Errorf("retry = %+v, first %v, %v; want the first call's records", again, isFirst, err)
			}
		})
	}
	wg.Wait()
	if db.LastSeq() != 2 {
		t.Errorf("LastSeq %d after retries, want 2: a retry wrote", db.LastSeq())
	}
	// Another key stores; the same key after a restart does not.
	if _, isFirst, err := db.PutOnce(ctx, "req-2", recs[0]); err != nil || !isFirst {
		t.Fatalf("PutOnce with a new key: first %v, %v", isFirst, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, memory.Config{Dir: dir})
	defer db.Close()
	again, isFirst, err := db.PutOnce(ctx, "req-1", recs...)
	if err != nil || isFirst || again[0].ID != first[0].ID {
		t.Fatalf("retry after restart = %+v, first %v, %v", again, isFirst, err)
	}
	if db.LastSeq() != 3 {
		t.Errorf("LastSeq %d, want 3", db.LastSeq())
	}
	if _, _, err := db.PutOnce(ctx, "", recs...); !errors.Is(err, memory.ErrInvalid) {
		t.Errorf("empty key: %v, want ErrInvalid", err)
	}
}
