package memory_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/depai/depai/memory"
)

var (
	fuzzOnce    sync.Once
	fuzzFixture string // a store with a table and a live write-ahead log
	fuzzFiles   []string
)

// fuzzStore builds, once per process, a small store whose write-ahead log
// holds commits (copied while open, cut after its data so copies are
// cheap) beside a table of older commits.
func fuzzStore(f *testing.F) string {
	fuzzOnce.Do(func() {
		dir, err := os.MkdirTemp("", "depai-fuzz-store")
		if err != nil {
			f.Fatal(err)
		}
		ctx := context.Background()
		db, err := memory.Open(ctx, memory.Config{Dir: dir})
		if err != nil {
			f.Fatal(err)
		}
		for i := range 40 {
			db.Put(ctx, memory.Record{Namespace: "agent/a", Kind: memory.KindReading, Text: "old", Tags: []string{"t"}, Key: string(rune('a' + i%5))})
		}
		db.Close()
		db, err = memory.Open(ctx, memory.Config{Dir: dir})
		if err != nil {
			f.Fatal(err)
		}
		for range 30 {
			db.Put(ctx, memory.Record{Namespace: "agent/b", Kind: memory.KindObservation, Text: "new"})
		}
		snap, err := os.MkdirTemp("", "depai-fuzz-fixture")
		if err != nil {
			f.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			if filepath.Ext(e.Name()) == ".mem" || filepath.Ext(e.Name()) == ".vlog" {
				end := len(b)
				for end > 0 && b[end-1] == 0 {
					end--
				}
				b = b[:end]
			}
			if e.Name() == "LOCK" {
				continue
			}
			if err := os.WriteFile(filepath.Join(snap, e.Name()), b, 0o600); err != nil {
				f.Fatal(err)
			}
			fuzzFiles = append(fuzzFiles, e.Name())
		}
		db.Close()
		os.RemoveAll(dir)
		slices.Sort(fuzzFiles)
		fuzzFixture = snap
	})
	return fuzzFixture
}

// FuzzOpenDamaged overwrites bytes of one file of a store and opens it:
// Open must never panic, and must either open the store or refuse with an
// error and leave the directory as it was. Verify must not panic either.
func FuzzOpenDamaged(f *testing.F) {
	fixture := fuzzStore(f)
	for i := range fuzzFiles {
		f.Add(uint8(i), uint32(100), []byte{0xff})
		f.Add(uint8(i), uint32(1<<31), []byte("garbage in the middle of it"))
	}
	f.Add(uint8(0), uint32(7), []byte{})
	f.Fuzz(func(t *testing.T, file uint8, off uint32, data []byte) {
		dir := t.TempDir()
		copyDir(t, fixture, dir)
		name := fuzzFiles[int(file)%len(fuzzFiles)]
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 {
			at := int(off) % len(b)
			copy(b[at:], data)
			if len(data) == 0 {
				b = b[:at] // an empty patch truncates
			}
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		before := dirHash(t, dir)
		if _, err := memory.Verify(context.Background(), dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("verify: %v", err)
		}
		if dirHash(t, dir) != before {
			t.Fatal("Verify changed the directory")
		}
		db, err := memory.Open(context.Background(), memory.Config{Dir: dir})
		if err != nil {
			if dirHash(t, dir) != before {
				t.Fatalf("a refused Open changed the directory: %v", err)
			}
			return
		}
		for _, err := range db.Query(context.Background(), memory.Query{}) {
			if err != nil {
				break
			}
		}
		db.Close()
	})
}
