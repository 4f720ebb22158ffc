package memory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A store whose tables hold fewer commits than the sequence mark says were
// acknowledged (its write-ahead log empty after a clean close) is refused
// before badger opens it, naming the records lost, and nothing changes —
// the open reads the store's last Seq from the tables, and must find it in
// the one table of many that holds it.
func TestTablesBehindMark(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, Config{Dir: dir, Profile: ProfileLowMem, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]Record, 200)
	for i := range recs {
		recs[i] = Record{Namespace: "fleet", Kind: KindObservation, Text: strings.Repeat("survey ", 300)}
	}
	var last uint64
	for range 60 {
		out, err := db.Put(ctx, recs...)
		if err != nil {
			t.Fatal(err)
		}
		last = out[len(out)-1].Seq
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(ssts) < 3 {
		t.Fatalf("%d tables; the case needs several", len(ssts))
	}
	// The store opens as it is: the last Seq is found in the tables.
	db, err = Open(ctx, Config{Dir: dir, Profile: ProfileLowMem, GCInterval: -1})
	if err != nil {
		t.Fatalf("clean store: %v", err)
	}
	if got := db.LastSeq(); got != last {
		t.Fatalf("LastSeq = %d, want %d", got, last)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, markFile), encodeMark(last+7), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	_, err = Open(ctx, Config{Dir: dir, Profile: ProfileLowMem, GCInterval: -1})
	var de *DamageError
	if !errors.As(err, &de) || len(de.Damage) != 1 || de.Damage[0].File != "tables" || len(de.Damage[0].Lost) != 1 || de.Damage[0].Lost[0] != (SeqRange{last + 1, last + 7}) {
		t.Fatalf("open = %v, want the tables named as missing records %d–%d", err, last+1, last+7)
	}
	if after := snapshotDir(t, dir); after != before {
		t.Errorf("the refused open changed the directory:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshotDir lists dir's files with their sizes and modification times.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		s += fmt.Sprintf("%s:%d:%d ", fi.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return s
}
