package memory

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/depai/depai/memory/internal/kv"
)

// badgerOnly leaves in dir what badger's own open writes, plus keys,
// without a format version: a new store whose first open ended before the
// version's write was durable (with no keys), or a damaged one.
func badgerOnly(t *testing.T, dir string, keys ...[]byte) {
	t.Helper()
	cfg := Config{Dir: dir}
	opts, err := badgerOptions(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := badger.Open(opts.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set(k, []byte("x")) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenStoreWithoutVersion(t *testing.T) {
	ctx := context.Background()
	t.Run("empty: a new store", func(t *testing.T) {
		dir := t.TempDir()
		badgerOnly(t, dir)
		db, err := Open(ctx, Config{Dir: dir})
		if err != nil {
			t.Fatalf("open of a store holding nothing: %v", err)
		}
		recs, err := db.Put(ctx, Record{Namespace: "agent/a", Kind: KindObservation, Text: "first"})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db, err = Open(ctx, Config{Dir: dir})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer db.Close()
		if got, err := db.Get(ctx, recs[0].ID); err != nil || got.Text != "first" {
			t.Errorf("Get after reopen = %+v, %v", got, err)
		}
	})
	t.Run("keys: damaged", func(t *testing.T) {
		dir := t.TempDir()
		badgerOnly(t, dir, []byte(kv.MetaLastSeq))
		db, err := Open(ctx, Config{Dir: dir})
		if err == nil {
			db.Close()
			t.Fatal("a store with keys but no format version opened")
		}
		if !strings.Contains(err.Error(), "format-version record is missing") {
			t.Errorf("error = %v, want it to name the missing format version", err)
		}
	})
	t.Run("empty, read-only: refused", func(t *testing.T) {
		dir := t.TempDir()
		badgerOnly(t, dir)
		db, err := Open(ctx, Config{Dir: dir, ReadOnly: true})
		if err == nil {
			db.Close()
			t.Fatal("read-only open of a store without a format version succeeded")
		}
	})
}

// TestNewStoreVersionFirst: the first commit of a new store waits for its
// format version, and a version that was not written fails every write
// with why (it cannot be made to fail on a real disk here).
func TestNewStoreVersionFirst(t *testing.T) {
	db := &DB{cfg: Config{Dir: "/data/memory"}, log: slog.New(slog.DiscardHandler),
		reqs: make(chan *request, 4), stop: make(chan struct{}), stopped: make(chan struct{})}
	versioned := make(chan error, 1)
	go db.commitAfter(versioned)
	r := &request{op: opPut, done: make(chan error, 1)}
	db.reqs <- r
	select {
	case err := <-r.done:
		t.Fatalf("a write was answered (%v) before the format version was", err)
	default:
	}
	versioned <- errors.New("input/output error")
	err := <-r.done
	if err == nil || !strings.Contains(err.Error(), "format version was not written") || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("write after a failed version = %v, want the reason", err)
	}
	r2 := &request{op: opPut, done: make(chan error, 1)}
	db.reqs <- r2
	close(db.stop)
	<-db.stopped
	if err := <-r2.done; err == nil {
		t.Error("a write queued at close was not refused")
	}
}
