package memory_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/depai/depai/memory"
)

// liveSnapshot writes n records in batches of batch to a store and copies
// its directory while the store is still open: what kill -9 leaves, a
// write-ahead log (.mem) with every acknowledged commit and no tables. It
// returns the copy and the records as acknowledged, in Seq order.
func liveSnapshot(t *testing.T, n, batch int) (string, []memory.Record) {
	t.Helper()
	if raceEnabled {
		n /= 4
	}
	src := t.TempDir()
	db := openDB(t, memory.Config{Dir: src})
	defer db.Close()
	var acked []memory.Record
	for i := 0; i < n; i += batch {
		recs := make([]memory.Record, 0, batch)
		for j := i; j < min(n, i+batch); j++ {
			recs = append(recs, memory.Record{Namespace: "agent/robot-1", Kind: memory.KindObservation, Text: fmt.Sprintf("observation %d of the burst", j)})
		}
		out, err := db.Put(context.Background(), recs...)
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, out...)
	}
	dst := t.TempDir()
	copyDir(t, src, dst)
	return dst, acked
}

// closedStore writes n records and closes the store: its records are in a
// table (.sst).
func closedStore(t *testing.T, n int) (string, []memory.Record) {
	t.Helper()
	if raceEnabled {
		n = min(n, 2000)
	}
	dir := t.TempDir()
	db := openDB(t, memory.Config{Dir: dir})
	var acked []memory.Record
	for i := 0; i < n; i += 100 {
		recs := make([]memory.Record, 0, 100)
		for j := i; j < min(n, i+100); j++ {
			recs = append(recs, memory.Record{Namespace: "agent/robot-1", Kind: memory.KindReading, Text: fmt.Sprintf("reading %d: %s", j, strings.Repeat("v", j%300))})
		}
		out, err := db.Put(context.Background(), recs...)
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, out...)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Open once more, so the open records its tables as verified: damage
	// done afterwards must still be found.
	db = openDB(t, memory.Config{Dir: dir})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, acked
}

// dirHash hashes every file's name, size and content under dir.
func dirHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", strings.TrimPrefix(path, dir), len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// walDataEnd returns the .mem file of dir and where its written data ends.
func walFile(t *testing.T, dir string) (string, int) {
	t.Helper()
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	if len(mems) != 1 {
		t.Fatalf("want one .mem file in %s, got %v", dir, mems)
	}
	b, err := os.ReadFile(mems[0])
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	return mems[0], end
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
}

// refuses opens dir, expects a DamageError naming file, and checks that the
// directory is unchanged.
func refuses(t *testing.T, dir, file string) *memory.DamageError {
	t.Helper()
	before := dirHash(t, dir)
	db, err := memory.Open(context.Background(), memory.Config{Dir: dir})
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded on a damaged store")
	}
	var de *memory.DamageError
	if !errors.As(err, &de) || !errors.Is(err, memory.ErrDamaged) {
		t.Fatalf("Open error %v, want a *DamageError wrapping ErrDamaged", err)
	}
	if !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open error %q does not name %s in %s", err, file, dir)
	}
	if after := dirHash(t, dir); after != before {
		t.Error("a refused Open changed the directory")
	}
	return de
}

// repairs runs Repair and checks that every acknowledged record is either
// readable after it or reported lost, and that the loss is what the
// damage explains (at most maxLost records).
func repairs(t *testing.T, dir string, acked []memory.Record, maxLost uint64) memory.RepairReport {
	t.Helper()
	ctx := context.Background()
	rep, err := memory.Verify(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatalf("Verify reports no damage: %+v", rep)
	}
	before := dirHash(t, dir)
	rr, err := memory.Repair(ctx, memory.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repair: salvaged %d, lost %v, damage %v", rr.Salvaged, rr.Lost, rr.Damage)
	if rr.LostCount() == 0 || rr.LostCount() > maxLost {
		t.Errorf("repair lost %d records (%v), want 1 to %d", rr.LostCount(), rr.Lost, maxLost)
	}
	if got := dirHash(t, rr.Damaged); got != before {
		t.Error("the damaged copy Repair kept differs from the damaged store")
	}
	lost := func(seq uint64) bool {
		return slices.ContainsFunc(rr.Lost, func(r memory.SeqRange) bool { return seq >= r.From && seq <= r.To })
	}
	db := openDB(t, memory.Config{Dir: dir})
	defer db.Close()
	missing := 0
	for _, rec := range acked {
		got, err := db.Get(ctx, rec.ID)
		switch {
		case err == nil && lost(rec.Seq):
			t.Errorf("record %d reported lost but readable", rec.Seq)
		case err == nil && (got.Text != rec.Text || got.Seq != rec.Seq):
			t.Errorf("record %d salvaged as %+v, want %+v", rec.Seq, got, rec)
		case err != nil && !lost(rec.Seq):
			t.Errorf("record %d silently missing after repair: %v", rec.Seq, err)
		case err != nil:
			missing++
		}
	}
	if uint64(missing) != rr.LostCount() {
		t.Errorf("%d acknowledged records missing, the report says %d", missing, rr.LostCount())
	}
	if rep, err := memory.Verify(ctx, dir); err != nil || !rep.OK() {
		t.Errorf("the repaired store does not verify: %v %+v", err, rep.Damage)
	}
	// Writing goes on from the newest Seq.
	out, err := db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindFact, Key: "k", Text: "after repair"})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Seq <= acked[len(acked)-1].Seq {
		t.Errorf("first Seq after repair %d, want above %d", out[0].Seq, acked[len(acked)-1].Seq)
	}
	return rr
}

func TestWALFlippedByte(t *testing.T) {
	dir, acked := liveSnapshot(t, 700, 7)
	wal, end := walFile(t, dir)
	flipByte(t, wal, end/3)
	de := refuses(t, dir, filepath.Base(wal))
	if !strings.Contains(de.Error(), "checksum") && !strings.Contains(de.Error(), "malformed") {
		t.Errorf("error %q does not say what is wrong", de)
	}
	// One transaction of 7 records is damaged; the rest of the log verifies.
	repairs(t, dir, acked, 7)
}

func TestWALTruncated(t *testing.T) {
	dir, acked := liveSnapshot(t, 600, 10)
	wal, end := walFile(t, dir)
	truncate(t, wal, int64(end/2))
	de := refuses(t, dir, filepath.Base(wal))
	if len(de.Damage) == 0 || len(de.Damage[len(de.Damage)-1].Lost) == 0 {
		t.Errorf("damage %+v does not say which records are missing", de.Damage)
	}
	rr := repairs(t, dir, acked, 400)
	if last := rr.Lost[len(rr.Lost)-1]; last.To != acked[len(acked)-1].Seq {
		t.Errorf("lost %v, want it to end at the newest acknowledged record %d", rr.Lost, acked[len(acked)-1].Seq)
	}
}

func TestWALGarbageBlock(t *testing.T) {
	dir, acked := liveSnapshot(t, 1000, 20)
	wal, end := walFile(t, dir)
	f, err := os.OpenFile(wal, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 4096)), int64(end/2)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	refuses(t, dir, filepath.Base(wal))
	repairs(t, dir, acked, 200)
}

func TestTableGarbageBlock(t *testing.T) {
	dir, acked := closedStore(t, 6000)
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no table")
	}
	slices.Sort(ssts)
	st, _ := os.Stat(ssts[0])
	f, err := os.OpenFile(ssts[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 4096)), st.Size()/3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	de := refuses(t, dir, filepath.Base(ssts[0]))
	if !strings.Contains(de.Error(), "block") {
		t.Errorf("error %q does not name the block", de)
	}
	repairs(t, dir, acked, 400)
}

func TestExportDamageIsLoud(t *testing.T) {
	// A table damaged while the store is open (bit rot, another writer)
	// fails the export instead of ending it early with exit status 0.
	dir, _ := closedStore(t, 6000)
	db := openDB(t, memory.Config{Dir: dir})
	defer db.Close()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	slices.Sort(ssts)
	st, _ := os.Stat(ssts[0])
	f, err := os.OpenFile(ssts[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 4096)), st.Size()/3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var out strings.Builder
	n, err := memory.Export(context.Background(), db, &out, memory.Query{})
	if err == nil || !errors.Is(err, memory.ErrDamaged) {
		t.Fatalf("Export of a damaged store: %d records, err %v; want an error wrapping ErrDamaged", n, err)
	}
	t.Log(err)
}

func TestVerifyClean(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		dir  func() string
	}{
		{"live log", func() string { d, _ := liveSnapshot(t, 500, 5); return d }},
		{"tables", func() string { d, _ := closedStore(t, 500); return d }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir()
			before := dirHash(t, dir)
			rep, err := memory.Verify(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			n := 500
			if raceEnabled && tc.name == "live log" {
				n = 125
			}
			if !rep.OK() || rep.Records != n || rep.LastSeq != uint64(n) || rep.Mark != uint64(n) || len(rep.Gaps) != 0 {
				t.Errorf("Verify = %+v, want %d records and that last seq and mark, no gaps, no damage", rep, n)
			}
			if dirHash(t, dir) != before {
				t.Error("Verify changed the directory")
			}
			rr, err := memory.Repair(ctx, memory.Config{Dir: dir})
			if err != nil || rr.Damaged != "" {
				t.Errorf("Repair of a sound store = %+v, %v; want it left alone", rr, err)
			}
		})
	}
}

func TestOpenRepair(t *testing.T) {
	dir, acked := liveSnapshot(t, 1000, 5)
	wal, end := walFile(t, dir)
	flipByte(t, wal, end/2)
	db, err := memory.Open(context.Background(), memory.Config{Dir: dir, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep := db.Repaired()
	if rep == nil || rep.LostCount() == 0 || rep.LostCount() > 5 {
		t.Fatalf("Repaired() = %+v, want 1 to 5 records lost", rep)
	}
	if db.LastSeq() != acked[len(acked)-1].Seq {
		t.Errorf("LastSeq %d, want %d", db.LastSeq(), acked[len(acked)-1].Seq)
	}
}

func TestReadOnlyCopy(t *testing.T) {
	ctx := context.Background()
	dir, acked := closedStore(t, 300)
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o500)
		}
		return os.Chmod(p, 0o400)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	before := dirHash(t, dir)
	db, err := memory.Open(ctx, memory.Config{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get(ctx, acked[10].ID); err != nil {
		t.Error(err)
	}
	st, err := db.Stats(ctx)
	if err != nil || st.Records != 300 {
		t.Errorf("Stats = %+v, %v; want 300 records", st, err)
	}
	var out strings.Builder
	if n, err := memory.Export(ctx, db, &out, memory.Query{}); err != nil || n != 300 {
		t.Errorf("Export = %d, %v; want 300", n, err)
	}
	if _, err := db.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "x"}); !errors.Is(err, memory.ErrReadOnly) {
		t.Errorf("Put on a read-only store: %v, want ErrReadOnly", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if dirHash(t, dir) != before {
		t.Error("a read-only open changed the directory")
	}
}

func TestReadOnlyFileSystem(t *testing.T) {
	ctx := context.Background()
	src, _ := closedStore(t, 100)
	mnt := t.TempDir()
	if err := mountTmpfs(mnt, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unmount(mnt) })
	dir := filepath.Join(mnt, "memory")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyDir(t, src, dir)
	if err := remountReadOnly(mnt); err != nil {
		t.Skipf("cannot remount read-only: %v", err)
	}
	before := dirHash(t, dir)
	_, err := memory.Open(ctx, memory.Config{Dir: dir})
	if !errors.Is(err, memory.ErrReadOnly) || !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), "copy") {
		t.Fatalf("Open on a read-only file system: %v; want ErrReadOnly saying how to read it", err)
	}
	if strings.Contains(err.Error(), "corrupt") || strings.Contains(err.Error(), "restore") {
		t.Errorf("read-only is reported as damage: %v", err)
	}
	db, err := memory.Open(ctx, memory.Config{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := db.Stats(ctx); err != nil || st.Records != 100 {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	db.Close()
	if rep, err := memory.Verify(ctx, dir); err != nil || !rep.OK() {
		t.Errorf("Verify on a read-only file system: %+v, %v", rep, err)
	}
	if dirHash(t, dir) != before {
		t.Error("the directory changed")
	}
}

// TestDiskFilledByAnotherProcess: another process fills the disk under an
// open store. Puts fail with ErrDiskFull naming the directory and the free
// space, reads go on, nothing acknowledged is lost, and writing resumes
// once there is room.
func TestDiskFilledByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	mnt := t.TempDir()
	if err := mountTmpfs(mnt, "size=128m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unmount(mnt) })
	dir := filepath.Join(mnt, "memory")
	db := openDB(t, memory.Config{Dir: dir, Profile: memory.ProfileLowMem})
	var acked []memory.Record
	putOne := func(i int) error {
		out, err := db.Put(ctx, memory.Record{Namespace: "agent/robot-1", Kind: memory.KindReading, Text: fmt.Sprint("reading ", i)})
		acked = append(acked, out...)
		return err
	}
	for i := range 200 {
		if err := putOne(i); err != nil {
			t.Fatal(err)
		}
	}
	filler := exec.Command("sh", "-c", `cat /dev/zero > "$1"`, "sh", filepath.Join(mnt, "fill"))
	if out, err := filler.CombinedOutput(); !strings.Contains(string(out), "No space left") {
		t.Fatalf("filler: %v %s", err, out)
	}
	err := putOne(200)
	if !errors.Is(err, memory.ErrDiskFull) || !strings.Contains(err.Error(), "free in "+dir) {
		t.Fatalf("Put on a full disk: %v; want ErrDiskFull naming %s and the free space", err, dir)
	}
	if _, err := db.Get(ctx, acked[len(acked)-1].ID); err != nil {
		t.Fatalf("Get on a full disk: %v", err)
	}
	if err := os.Remove(filepath.Join(mnt, "fill")); err != nil {
		t.Fatal(err)
	}
	if err := putOne(201); err != nil {
		t.Fatalf("Put once there is room again: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := memory.Verify(ctx, dir); err != nil || !rep.OK() || rep.Records != len(acked) {
		t.Fatalf("Verify = %+v, %v; want %d records, no damage", rep, err, len(acked))
	}
	db = openDB(t, memory.Config{Dir: dir, Profile: memory.ProfileLowMem})
	defer db.Close()
	for _, r := range acked {
		if _, err := db.Get(ctx, r.ID); err != nil {
			t.Fatalf("acknowledged %d lost: %v", r.Seq, err)
		}
	}
}

// TestLowMemSmallDisk: on a disk with less free than the lowmem profile
// keeps (48 MiB), a write is refused with an error that names the profile,
// the free space and the threshold and how to change it; with
// Config.MinFreeBytes set lower the store writes, and refuses below that,
// saying so.
func TestLowMemSmallDisk(t *testing.T) {
	ctx := context.Background()
	mnt := t.TempDir()
	if err := mountTmpfs(mnt, "size=40m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unmount(mnt) })
	dir := filepath.Join(mnt, "memory")
	put := func(db *memory.DB) error {
		_, err := db.Put(ctx, memory.Record{Namespace: "agent/robot-1", Kind: memory.KindReading, Text: "battery 71%"})
		return err
	}
	refused := func(err error, want ...string) {
		t.Helper()
		for _, w := range append(want, "free in "+dir, "profile lowmem", "MinFreeBytes") {
			if !errors.Is(err, memory.ErrDiskFull) || !strings.Contains(err.Error(), w) {
				t.Fatalf("Put: %v; want ErrDiskFull saying %q", err, w)
			}
		}
	}
	db := openDB(t, memory.Config{Dir: dir, Profile: memory.ProfileLowMem})
	refused(put(db), "below the 48.0 MiB", "two memtables and two value-log files")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, memory.Config{Dir: dir, Profile: memory.ProfileLowMem, MinFreeBytes: 16 << 20})
	defer db.Close()
	for range 100 {
		if err := put(db); err != nil {
			t.Fatalf("Put with MinFreeBytes 16 MiB on a 40 MiB disk: %v", err)
		}
	}
	// Leave 12 MiB free.
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "fill"), make([]byte, int64(st.Bavail)*st.Bsize-12<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	refused(put(db), "below the 16.0 MiB", "Config.MinFreeBytes")
	if _, err := memory.Open(ctx, memory.Config{Dir: t.TempDir(), MinFreeBytes: -1}); !errors.Is(err, memory.ErrInvalid) {
		t.Errorf("MinFreeBytes -1: %v, want ErrInvalid", err)
	}
}
