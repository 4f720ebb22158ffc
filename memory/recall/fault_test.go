package recall_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/recall"
)

// fill puts n records "note i alpha" in batches.
func fill(t *testing.T, db memory.Store, n int) { fillFrom(t, db, 0, n) }

// fillFrom puts records "note i alpha" for i in [from, to).
func fillFrom(t *testing.T, db memory.Store, from, n int) {
	t.Helper()
	for i := from; i < n; i += 500 {
		recs := make([]memory.Record, 0, 500)
		for j := i; j < min(n, i+500); j++ {
			recs = append(recs, memory.Record{Namespace: "agent/robot-1", Kind: memory.KindObservation, Text: fmt.Sprintf("note%d alpha bravo", j)})
		}
		put(t, db, recs...)
	}
}

// indexed builds and closes an index of n records; it returns the store
// (open) and the index directory.
func indexed(t *testing.T, n int) (*memory.DB, string) {
	t.Helper()
	db, dir := newStore(t)
	fill(t, db, n)
	idx := filepath.Join(dir, "recall")
	x := openIndex(t, recall.Config{Source: db, Dir: idx})
	sync(t, x)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	return db, idx
}

// rebuilds reopens the index and checks that it says it rebuilt and that
// it finds every record.
func rebuilds(t *testing.T, db *memory.DB, idx string, n int, because string) {
	t.Helper()
	x := openIndex(t, recall.Config{Source: db, Dir: idx})
	defer x.Close()
	sync(t, x)
	s := x.Stats()
	if !strings.Contains(s.LastError, "rebuilt") || !strings.Contains(s.LastError, because) {
		t.Errorf("Stats.LastError %q, want it to say the index was rebuilt because of %q", s.LastError, because)
	}
	if s.Docs != n || !s.Ready {
		t.Errorf("Stats = %+v, want %d documents, ready", s, n)
	}
	if hits := search(t, x, recall.Query{Text: fmt.Sprintf("note%d", n-7)}); len(hits) != 1 {
		t.Errorf("search after the rebuild: %q", texts(hits))
	}
}

func TestTruncatedIndexTable(t *testing.T) {
	db, idx := indexed(t, 2000)
	ssts, _ := filepath.Glob(filepath.Join(idx, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no table in the index")
	}
	// badger panics on a truncated table in a goroutine no recover reaches.
	if err := os.Truncate(ssts[0], 100); err != nil {
		t.Fatal(err)
	}
	rebuilds(t, db, idx, 2000, "exceeds the file")
}

func TestGarbledIndexTable(t *testing.T) {
	db, idx := indexed(t, 2000)
	ssts, _ := filepath.Glob(filepath.Join(idx, "*.sst"))
	b, err := os.ReadFile(ssts[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 3; i < len(b)/3+4096 && i < len(b); i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(ssts[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	rebuilds(t, db, idx, 2000, "")
}

func TestMissingIndexFiles(t *testing.T) {
	db, idx := indexed(t, 2000) // enough to be saved (see TestLazyIndexOpen)
	if err := os.Remove(filepath.Join(idx, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	rebuilds(t, db, idx, 2000, "")
}

// An index that starts empty opens its badger only once it has enough to
// save: a short-lived process with a few records never creates the files,
// and the next open reads those records from the store again.
func TestLazyIndexOpen(t *testing.T) {
	db, dir := newStore(t)
	fill(t, db, 300)
	idx := filepath.Join(dir, "recall")
	x := openIndex(t, recall.Config{Source: db, Dir: idx})
	sync(t, x)
	if hits := search(t, x, recall.Query{Text: "note17"}); len(hits) != 1 {
		t.Fatalf("search before any save: %q", texts(hits))
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(idx, "*")); len(m) != 0 {
		t.Fatalf("an index of 300 documents wrote %q; want nothing yet", m)
	}
	fillFrom(t, db, 300, 1500)
	x = openIndex(t, recall.Config{Source: db, Dir: idx})
	sync(t, x)
	if s := x.Stats(); s.Docs != 1500 {
		t.Fatalf("reopened: %d documents, want 1500", s.Docs)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(idx, "MANIFEST")); err != nil {
		t.Fatalf("an index of 1500 documents was not saved: %v", err)
	}
	x = openIndex(t, recall.Config{Source: db, Dir: idx})
	defer x.Close()
	sync(t, x)
	if hits := search(t, x, recall.Query{Text: "note1499"}); len(hits) != 1 {
		t.Fatalf("search after loading the saved index: %q", texts(hits))
	}
}

func TestIndexFormatChange(t *testing.T) {
	db, idx := indexed(t, 500)
	bdb, err := badger.Open(badger.DefaultOptions(idx).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set([]byte("m/format"), []byte("depai-recall-0")) }); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	rebuilds(t, db, idx, 500, "format")
}

// TestSearchWhileLoading: until the index is ready, Search ranks the
// newest records of the store, so a start never waits for the index.
func TestSearchWhileRebuilding(t *testing.T) {
	db, dir := newStore(t)
	fill(t, db, 3000)
	x, err := recall.Open(context.Background(), recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	// Whatever phase the index is in, the newest record is found.
	hits := search(t, x, recall.Query{Text: "note2999"})
	if len(hits) != 1 || hits[0].Record.Text != "note2999 alpha bravo" {
		t.Fatalf("hits %q (%+v)", texts(hits), x.Stats())
	}
	sync(t, x)
	if s := x.Stats(); !s.Ready || s.Phase != "ready" || s.Progress != 1 {
		t.Errorf("Stats after Sync = %+v", s)
	}
}

const buildCrashEnv = "DEPAI_RECALL_BUILD_CRASH"

// TestKill9DuringRebuild SIGKILLs a process while it builds the index of a
// store, then checks the next open recovers and indexes every record.
func TestKill9DuringRebuild(t *testing.T) {
	if dir := os.Getenv(buildCrashEnv); dir != "" {
		buildChild(t, dir)
		return
	}
	dir := t.TempDir()
	db, err := memory.Open(context.Background(), memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	n := 30000
	if raceEnabled {
		n = 8000
	}
	fill(t, db, n)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9DuringRebuild$")
	cmd.Env = append(os.Environ(), buildCrashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		// The child reports its cursor as it goes; kill it part way.
		var cur uint64
		if _, err := fmt.Sscanf(sc.Text(), "cursor %d", &cur); err == nil && cur > uint64(n/4) && !killed {
			cmd.Process.Kill()
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatal("the child finished before it was killed")
	}
	db, err = memory.Open(context.Background(), memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
	defer x.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := x.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s := x.Stats(); s.Docs != n {
		t.Fatalf("after kill -9 during the build: Stats %+v, want %d documents", s, n)
	}
	if hits := search(t, x, recall.Query{Text: fmt.Sprintf("note%d", n/2)}); len(hits) != 1 {
		t.Fatalf("hits %q", texts(hits))
	}
}

func buildChild(t *testing.T, dir string) {
	db, err := memory.Open(context.Background(), memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	x, err := recall.Open(context.Background(), recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), CheckpointEvery: 2000})
	if err != nil {
		t.Fatal(err)
	}
	for {
		fmt.Printf("cursor %d\n", x.Stats().Cursor)
		time.Sleep(time.Millisecond)
	}
}

// TestIndexFullDisk puts the index on a small tmpfs that another process
// fills: the index stops saving, says why, keeps serving and saves again
// once there is room — instead of dying with SIGBUS in badger's mapped log.
func TestIndexFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=128m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	db, _ := newStore(t)
	idx := filepath.Join(mnt, "recall")
	x := openIndex(t, recall.Config{Source: db, Dir: idx, CheckpointEvery: 500})
	defer x.Close()
	fill(t, db, 1000)
	sync(t, x)
	// Another process fills the disk.
	filler := exec.Command("sh", "-c", `cat /dev/zero > "$1"`, "sh", filepath.Join(mnt, "fill"))
	if out, err := filler.CombinedOutput(); !strings.Contains(string(out), "No space left") {
		t.Fatalf("filler: %v %s", err, out)
	}
	fillFrom(t, db, 1000, 4000)
	sync(t, x)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(x.Stats().LastError, "bytes free") {
		if time.Now().After(deadline) {
			t.Fatalf("Stats %+v, want LastError naming the free space", x.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := x.Stats(); s.Docs != 4000 || !strings.Contains(s.LastError, idx) {
		t.Errorf("Stats on a full disk = %+v, want 4000 documents and the directory named", s)
	}
	if hits := search(t, x, recall.Query{Text: "note3500"}); len(hits) != 1 {
		t.Errorf("search on a full disk: %q", texts(hits))
	}
	if err := os.Remove(filepath.Join(mnt, "fill")); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatalf("Close once there is room again: %v", err)
	}
	x = openIndex(t, recall.Config{Source: db, Dir: idx})
	defer x.Close()
	if s := x.Stats(); s.Docs != 4000 {
		t.Errorf("reopened: Stats %+v, want the 4000 documents saved by Close", s)
	}
}
