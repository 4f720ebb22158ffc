package memory_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/depai/depai/memory"
)

// Records older than the ring are read from badger once and then from the
// read cache: the same record every time, never aliased with what the
// cache holds, an expired one not at all, and a fact always with its
// current ValidTo.
func TestGetBeyondTheRing(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, memory.Config{RecentRecords: 2})
	defer db.Close()
	put := func(r memory.Record) memory.Record {
		t.Helper()
		recs, err := db.Put(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return recs[0]
	}
	soon := time.Now().Add(300 * time.Millisecond)
	old := put(memory.Record{Namespace: "a", Kind: memory.KindTurn, Text: "old", Data: []byte(`{"n":1}`), Tags: []string{"t1", "t2"}})
	expiring := put(memory.Record{Namespace: "a", Kind: memory.KindObservation, Text: "expiring", ExpiresAt: soon})
	fact, err := db.PutFact(ctx, memory.Record{Namespace: "a", Kind: memory.KindFact, Key: "k", Text: "v1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 { // push them all out of the ring
		put(memory.Record{Namespace: "b", Kind: memory.KindObservation, Text: fmt.Sprint("filler ", i)})
	}
	for i := range 3 {
		got, err := db.Get(ctx, old.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != old.ID || got.Seq != old.Seq || got.Text != "old" || string(got.Data) != `{"n":1}` || !slices.Equal(got.Tags, old.Tags) {
			t.Fatalf("get %d: %+v, want %+v", i, got, old)
		}
		got.Tags[0], got.Data[0] = "changed", 'X' // must not reach the next Get
	}
	if _, err := db.Get(ctx, expiring.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutFact(ctx, memory.Record{Namespace: "a", Kind: memory.KindFact, Key: "k", Text: "v2"}, fact.Seq); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(ctx, fact.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ValidTo.IsZero() {
		t.Errorf("the superseded fact came back without ValidTo: %+v", got)
	}
	time.Sleep(time.Until(soon) + 10*time.Millisecond)
	if _, err := db.Get(ctx, expiring.ID); err == nil {
		t.Error("an expired record was returned after it was cached")
	}
}

// A record read from badger again costs what one from the ring does (a
// copy of its tags and data) instead of a read and a decode.
func TestGetBeyondTheRingAllocs(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, memory.Config{RecentRecords: 1})
	defer db.Close()
	recs, err := db.Put(ctx, memory.Record{Namespace: "a", Kind: memory.KindTurn, Text: "x\ny", Data: []byte(`{"n":1}`), Tags: []string{"t1", "t2"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(ctx, memory.Record{Namespace: "a", Kind: memory.KindObservation, Text: "newer"}); err != nil {
		t.Fatal(err)
	}
	id := recs[0].ID
	if _, err := db.Get(ctx, id); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		if _, err := db.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Errorf("Get of a record older than the ring: %v allocations, want at most 2 (its tags and data)", n)
	}
}
