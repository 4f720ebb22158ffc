package memory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/memory"
)

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, memory.Config{Dir: dir, RecentRecords: 8})
	var last memory.Record
	for i := range 20 {
		recs, err := db.Put(ctx, memory.Record{Namespace: fmt.Sprintf("agent/r%d", i%4), Kind: memory.KindReading, Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		last = recs[0]
	}
	f1, err := db.PutFact(ctx, memory.Record{Namespace: "fleet", Key: "k", Text: "v1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, memory.Config{Dir: dir, RecentRecords: 8})
	defer db.Close()
	if db.LastSeq() != f1.Seq {
		t.Errorf("LastSeq after reopen = %d, want %d", db.LastSeq(), f1.Seq)
	}
	if got, err := db.Get(ctx, last.ID); err != nil || got.Text != "19" {
		t.Errorf("Get after reopen = %+v, %v", got, err)
	}
	if got := strings.Join(db.Namespaces(), ","); got != "agent/r0,agent/r1,agent/r2,agent/r3,fleet" {
		t.Errorf("Namespaces after reopen = %s", got)
	}
	// Seq continues after the stored ones.
	recs, err := db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "after"})
	if err != nil || recs[0].Seq != f1.Seq+1 {
		t.Errorf("Put after reopen: seq %d, %v; want %d", recs[0].Seq, err, f1.Seq+1)
	}
	// Facts keep their versions: the stored current one is what PutFact checks.
	if _, err := db.PutFact(ctx, memory.Record{Namespace: "fleet", Key: "k", Text: "stale"}, 0); !errors.Is(err, memory.ErrConflict) {
		t.Errorf("PutFact expecting none after reopen = %v, want ErrConflict", err)
	}
	// The reloaded ring (8) and badger (the rest) join without gaps.
	var texts []string
	for rec, err := range db.Query(ctx, memory.Query{Namespace: "agent/r1"}) {
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, rec.Text)
	}
	if got := strings.Join(texts, ","); got != "17,13,9,5,1" {
		t.Errorf("agent/r1 newest first = %s", got)
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, memory.Config{Dir: dir})
	if _, err := memory.Open(ctx, memory.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second Open of the same dir = %v, want in use", err)
	}
	// The watch has yielded a record before Close, so Close must end a
	// running watch, not one that starts on a closed store.
	watchErr := make(chan error, 1)
	live := make(chan struct{})
	go func() {
		for _, err := range db.Watch(ctx, memory.Query{}) {
			if err != nil {
				watchErr <- err
				return
			}
			close(live)
		}
		watchErr <- nil
	}()
	if _, err := db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "before close"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-live:
	case <-time.After(10 * time.Second):
		t.Fatal("watch yielded nothing for 10s")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-watchErr:
		if !errors.Is(err, memory.ErrClosed) {
			t.Errorf("watch ended with %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch still running after Close")
	}
	if _, err := db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage}); !errors.Is(err, memory.ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	var qerr error
	for _, err := range db.Query(ctx, memory.Query{}) {
		qerr = err
		break
	}
	if !errors.Is(qerr, memory.ErrClosed) {
		t.Errorf("Query after Close = %v, want ErrClosed", qerr)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		cfg  memory.Config
		want string
	}{
		{memory.Config{}, "Config.Dir is empty"},
		{memory.Config{Dir: "x", Profile: "tiny"}, `profile "tiny"`},
		{memory.Config{Dir: "x", MaxRecordBytes: -1}, "MaxRecordBytes -1"},
		{memory.Config{Dir: "x", Profile: memory.ProfileLowMem, MaxRecordBytes: 8 << 20}, "too large for profile"},
	}
	for _, tt := range tests {
		_, err := memory.Open(context.Background(), tt.cfg)
		if !errors.Is(err, memory.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid mentioning %q", tt.cfg, err, tt.want)
		}
	}
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, memory.Config{MaxRecordBytes: 4096})
	defer db.Close()
	_, err := db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: strings.Repeat("x", 5000)})
	if !errors.Is(err, memory.ErrTooLarge) || !strings.Contains(err.Error(), "4096") {
		t.Errorf("Put of 5000 bytes with a 4096 limit = %v", err)
	}
	// A Put too big for one transaction fails whole, and the store goes on.
	big := make([]memory.Record, 3000)
	for i := range big {
		big[i] = memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: strings.Repeat("y", 2000)}
	}
	if _, err := db.Put(ctx, big...); !errors.Is(err, memory.ErrTooLarge) {
		t.Errorf("Put of 6 MB at once = %v, want ErrTooLarge", err)
	}
	recs, err := db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "fine"})
	if err != nil || recs[0].Seq != 1 {
		t.Errorf("Put after failures = seq %v, %v; want 1", recs, err)
	}
}

// TestDiskReserve checks the policy half of the full-disk handling without
// filling a disk: with a reserve larger than the disk, Put refuses and
// reads go on. (TestFullDisk fills a real tmpfs.)
func TestDiskReserve(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, memory.Config{Dir: dir})
	recs, err := db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "before"})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, memory.Config{Dir: dir, MinFreeBytes: 1 << 62})
	defer db.Close()
	_, err = db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "after"})
	if !errors.Is(err, memory.ErrDiskFull) || !strings.Contains(err.Error(), "MiB free in "+dir) || !strings.Contains(err.Error(), "Config.MinFreeBytes, profile default") {
		t.Errorf("Put = %v, want ErrDiskFull", err)
	}
	if _, err := db.Get(ctx, recs[0].ID); err != nil {
		t.Errorf("Get with a full disk = %v", err)
	}
}
