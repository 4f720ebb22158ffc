package memory_test

import (
	"context"
	"errors"
	"strings"
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

// A key names one request: reusing it for other records is refused, and
// stores nothing, also after a restart.
func TestPutOnceKeyReused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, memory.Config{Dir: dir})
	rec := memory.Record{Namespace: "shared", Kind: memory.KindObservation, Text: "dock 3 is free"}
	if _, _, err := db.PutOnce(ctx, "k", rec); err != nil {
		t.Fatal(err)
	}
	other := rec
	other.Text = "dock 3 is taken"
	_, _, err := db.PutOnce(ctx, "k", other)
	if !errors.Is(err, memory.ErrKeyReused) || !strings.Contains(err.Error(), `key "k"`) {
		t.Fatalf("PutOnce with a reused key and other records: %v, want ErrKeyReused naming the key", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, memory.Config{Dir: dir})
	defer db.Close()
	if _, _, err := db.PutOnce(ctx, "k", other); !errors.Is(err, memory.ErrKeyReused) {
		t.Fatalf("after a restart: %v, want ErrKeyReused", err)
	}
	if _, isFirst, err := db.PutOnce(ctx, "k", rec); err != nil || isFirst {
		t.Fatalf("the same records again: first %v, %v; want a replay", isFirst, err)
	}
	if db.LastSeq() != 1 {
		t.Errorf("LastSeq %d, want 1", db.LastSeq())
	}
}

func TestPutBatch(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, memory.Config{Dir: t.TempDir()})
	defer db.Close()
	audit := memory.Record{Namespace: "audit", Kind: memory.KindAudit, Text: "allow put"}
	put := memory.Record{Namespace: "shared", Kind: memory.KindObservation, Text: "pallet at B2"}
	if _, _, err := db.PutOnce(ctx, "old", put); err != nil {
		t.Fatal(err)
	}
	changed := put
	changed.Text = "pallet at B3"
	out, err := db.PutBatch(ctx,
		memory.Write{Recs: []memory.Record{audit, audit}},
		memory.Write{Key: "new", Recs: []memory.Record{put}},
		memory.Write{Key: "new", Recs: []memory.Record{put}}, // the same request twice in one batch: stored once
		memory.Write{Key: "old", Recs: []memory.Record{put}},
		memory.Write{Key: "old", Recs: []memory.Record{changed}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 5 || len(out[0].Recs) != 2 || out[0].Recs[0].Seq != 2 || out[0].Recs[1].Seq != 3 {
		t.Fatalf("audit write = %+v, want seqs 2 and 3", out[0])
	}
	if !out[1].First || out[1].Recs[0].Seq != 4 {
		t.Errorf("new key = %+v, want stored at seq 4", out[1])
	}
	if out[2].First || out[2].Recs[0].ID != out[1].Recs[0].ID {
		t.Errorf("new key again in the same batch = %+v, want the first one's record", out[2])
	}
	if out[3].First || out[3].Recs[0].Seq != 1 || out[3].Err != nil {
		t.Errorf("old key = %+v, want the record of seq 1", out[3])
	}
	if !errors.Is(out[4].Err, memory.ErrKeyReused) {
		t.Errorf("old key with other records: %+v, want ErrKeyReused", out[4])
	}
	if db.LastSeq() != 4 {
		t.Errorf("LastSeq %d, want 4", db.LastSeq())
	}
	// An invalid write fails the whole batch before anything is stored.
	if _, err := db.PutBatch(ctx, memory.Write{Recs: []memory.Record{audit}}, memory.Write{Recs: []memory.Record{{Namespace: "shared"}}}); !errors.Is(err, memory.ErrInvalid) {
		t.Errorf("batch with an invalid record: %v, want ErrInvalid", err)
	}
	if db.LastSeq() != 4 {
		t.Errorf("LastSeq %d after a refused batch, want 4", db.LastSeq())
	}
}

// A record too large for the store fails its own write only: the audit
// records beside it commit.
func TestPutBatchTooLargePart(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, memory.Config{Dir: t.TempDir(), MaxRecordBytes: 4096})
	defer db.Close()
	small := memory.Record{Namespace: "audit", Kind: memory.KindAudit, Text: "allow put"}
	big := memory.Record{Namespace: "shared", Kind: memory.KindObservation, Text: strings.Repeat("x", 8192)}
	out, err := db.PutBatch(ctx, memory.Write{Recs: []memory.Record{small}}, memory.Write{Key: "k", Recs: []memory.Record{big}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Err != nil || len(out[0].Recs) != 1 || !errors.Is(out[1].Err, memory.ErrTooLarge) {
		t.Fatalf("batch = %+v, want the first stored and ErrTooLarge for the second", out)
	}
	if db.LastSeq() != 1 {
		t.Errorf("LastSeq %d, want 1", db.LastSeq())
	}
}

// The first write carries the batch: when it cannot be stored, nothing is.
func TestPutBatchFirstWriteCarriesIt(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, memory.Config{Dir: t.TempDir(), MaxRecordBytes: 4096})
	defer db.Close()
	big := memory.Record{Namespace: "audit", Kind: memory.KindAudit, Text: strings.Repeat("x", 8192)}
	small := memory.Record{Namespace: "shared", Kind: memory.KindObservation, Text: "pallet at B2"}
	if _, err := db.PutBatch(ctx, memory.Write{Recs: []memory.Record{big}}, memory.Write{Key: "k", Recs: []memory.Record{small}}); !errors.Is(err, memory.ErrTooLarge) {
		t.Fatalf("batch whose first write is too large: %v, want ErrTooLarge", err)
	}
	if db.LastSeq() != 0 {
		t.Errorf("LastSeq %d, want 0: the second write committed without the first", db.LastSeq())
	}
}
