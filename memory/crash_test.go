package memory_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/depai/depai/memory"
)

const crashEnv = "DEPAI_MEMORY_CRASH_WRITER"

// TestKill9 re-executes this test binary as a writer that Puts from many
// goroutines and prints each acknowledged ID, SIGKILLs it mid-burst, reopens
// the directory and checks that every acknowledged record is there.
func TestKill9(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashWriter(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue
		}
		acked = append(acked, id)
		if len(acked) == 3000 && !killed {
			// SIGKILL: no deferred Close, no flush; whatever badger has not
			// synced is gone. Lines already in the pipe still arrive.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("writer ended before it was killed: %v", err)
	}
	// What kill -9 leaves is not damage: at most a write it interrupted,
	// never acknowledged.
	rep, err := memory.Verify(context.Background(), dir)
	if err != nil || !rep.OK() {
		t.Fatalf("Verify after kill -9 = %+v, %v; want no damage", rep, err)
	}
	if rep.Mark < uint64(len(acked)) {
		t.Errorf("sequence mark %d, below the %d acknowledged records", rep.Mark, len(acked))
	}
	db, err := memory.Open(context.Background(), memory.Config{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer db.Close()
	for _, id := range acked {
		if _, err := db.Get(context.Background(), id); err != nil {
			t.Fatalf("acknowledged record %s lost: %v", id, err)
		}
	}
	stats, err := db.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged, %d stored (records in flight when killed may be stored unacknowledged)", len(acked), stats.Records)
	if stats.Records < len(acked) {
		t.Errorf("stats count %d records, fewer than the %d acknowledged", stats.Records, len(acked))
	}
}

func crashWriter(dir string) {
	db, err := memory.Open(context.Background(), memory.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				recs, err := db.Put(context.Background(), memory.Record{
					Namespace: fmt.Sprintf("agent/w%d", g), Kind: memory.KindObservation, Text: fmt.Sprintf("burst %d %d", g, i),
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %s\n", recs[0].ID)
				w.Flush() // the ack leaves the process only after Put returned
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestOpenCorrupt(t *testing.T) {
	// A store with tables on disk: closing flushes the memtable to an .sst.
	seed := t.TempDir()
	db := openDB(t, memory.Config{Dir: seed})
	for i := range 50 {
		if _, err := db.Put(context.Background(), memory.Record{Namespace: "shared", Kind: memory.KindReading, Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ssts, _ := filepath.Glob(filepath.Join(seed, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no .sst file after close")
	}
	sst := filepath.Base(ssts[0])

	tests := []struct {
		name  string
		harm  func(t *testing.T, dir string)
		inErr string
	}{
		{"garbled MANIFEST", func(t *testing.T, dir string) { garble(t, filepath.Join(dir, "MANIFEST"), 8) }, "damaged"},
		{"truncated MANIFEST", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "MANIFEST"), 10) }, "damaged"},
		{"truncated table", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, sst), 100) }, "damaged"},
		{"garbled table", func(t *testing.T, dir string) { garble(t, filepath.Join(dir, sst), 0) }, "damaged"},
		{"missing MANIFEST", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "MANIFEST")) }, "not a depai memory store"},
		{"some other directory", func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			os.MkdirAll(dir, 0o700)
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o600)
		}, "not a depai memory store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, seed, dir)
			tt.harm(t, dir)
			db, err := memory.Open(context.Background(), memory.Config{Dir: dir})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded on a damaged directory")
			}
			if !strings.Contains(err.Error(), tt.inErr) || !strings.Contains(err.Error(), dir) {
				t.Errorf("Open error %q, want it to name %s and say %q", err, dir, tt.inErr)
			}
		})
	}
	t.Run("undamaged copy opens", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, seed, dir)
		db := openDB(t, memory.Config{Dir: dir})
		defer db.Close()
		if db.LastSeq() != 50 {
			t.Errorf("LastSeq = %d, want 50", db.LastSeq())
		}
	})
}

// garble overwrites the file's bytes from off on with 0xA5 (the whole
// rest of the file, so every checksum past off fails).
func garble(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := off; i < len(b); i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// Keep badger's preallocated logs sparse, as they are: write the
		// data and extend the file over its trailing zeros.
		end := len(b)
		for end > 0 && b[end-1] == 0 {
			end--
		}
		path := filepath.Join(to, e.Name())
		if err := os.WriteFile(path, b[:end], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
}

const fullDiskEnv = "DEPAI_MEMORY_FULL_DISK"

// TestFullDisk fills a real, small tmpfs (mounted by the test in a private
// user and mount namespace) until Put fails, then checks the store still
// reads, closes and reopens with every acknowledged record.
func TestFullDisk(t *testing.T) {
	if dir := os.Getenv(fullDiskEnv); dir != "" {
		fullDiskChild(t, dir)
		return
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare(1) not installed")
	}
	if err := exec.Command(unshare, "-rm", "true").Run(); err != nil {
		t.Skipf("cannot create user and mount namespaces: %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(unshare, "-rm", "sh", "-c",
		`mount -t tmpfs -o size=72m tmpfs "$1" && exec "$2" -test.run='^TestFullDisk$' -test.v`, "sh", dir, os.Args[0])
	cmd.Env = append(os.Environ(), fullDiskEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("full-disk child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func fullDiskChild(t *testing.T, dir string) {
	ctx := context.Background()
	cfg := memory.Config{Dir: filepath.Join(dir, "memory"), Profile: memory.ProfileLowMem}
	db, err := memory.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("x", 4000)
	var acked []string
	var putErr error
	for putErr == nil {
		batch := make([]memory.Record, 50)
		for i := range batch {
			batch[i] = memory.Record{Namespace: "agent/robot-1", Kind: memory.KindReading, Text: text}
		}
		var recs []memory.Record
		recs, putErr = db.Put(ctx, batch...)
		for _, r := range recs {
			acked = append(acked, r.ID)
		}
		if len(acked) > 200_000 {
			t.Fatal("the 72 MB disk never filled")
		}
	}
	if !errors.Is(putErr, memory.ErrDiskFull) {
		t.Fatalf("Put on a full disk = %v, want ErrDiskFull", putErr)
	}
	t.Logf("disk full after %d records: %v", len(acked), putErr)
	if _, err := db.Get(ctx, acked[len(acked)-1]); err != nil {
		t.Fatalf("Get after disk full: %v", err)
	}
	n := 0
	for _, err := range db.Query(ctx, memory.Query{Namespace: "agent", Limit: 20}) {
		if err != nil {
			t.Fatalf("Query after disk full: %v", err)
		}
		n++
	}
	if n != 20 {
		t.Fatalf("Query after disk full returned %d, want 20", n)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close after disk full: %v", err)
	}
	db, err = memory.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("reopen after disk full: %v", err)
	}
	defer db.Close()
	for _, id := range acked {
		if _, err := db.Get(ctx, id); err != nil {
			t.Fatalf("acknowledged %s lost: %v", id, err)
		}
	}
}
