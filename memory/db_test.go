package memory_test

import (
	"context"
	"testing"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/memorytest"
)

func openDB(t *testing.T, cfg memory.Config) *memory.DB {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	db, err := memory.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestConformance(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		memorytest.Run(t, func(t *testing.T) memory.Store { return openDB(t, memory.Config{}) })
	})
	t.Run("lowmem small ring", func(t *testing.T) {
		// A 4-record ring and a 2-batch watch buffer push queries and
		// watches onto their badger and resume paths.
		memorytest.Run(t, func(t *testing.T) memory.Store {
			return openDB(t, memory.Config{Profile: memory.ProfileLowMem, RecentRecords: 4, WatchBuffer: 2})
		})
	})
	t.Run("no ring", func(t *testing.T) {
		memorytest.Run(t, func(t *testing.T) memory.Store { return openDB(t, memory.Config{RecentRecords: -1}) })
	})
	t.Run("scoped", func(t *testing.T) {
		memorytest.Run(t, func(t *testing.T) memory.Store {
			db := openDB(t, memory.Config{})
			t.Cleanup(func() { db.Close() })
			all := []string{"agent", "fleet", "shared", "slow", "other", "nowhere"}
			s, err := memory.Scoped(db, memory.Grants{Principal: "tester", Read: all, Write: all})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}
