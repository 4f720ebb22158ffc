package memory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/memory"
)

// commits records every group commit's size, as Config.OnCommit reports it.
type commits struct {
	mu   sync.Mutex
	seen []memory.CommitInfo
}

func (c *commits) on(ci memory.CommitInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, ci)
}

func (c *commits) since(n int) []memory.CommitInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]memory.CommitInfo(nil), c.seen[n:]...)
}

func (c *commits) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func turnRec(text string) memory.Record {
	return memory.Record{Namespace: "agent/a", Kind: memory.KindTurn, Text: text}
}

// putAsync runs put in a goroutine; the channel gets its error.
func putAsync(put func(context.Context, ...memory.Record) ([]memory.Record, error), rec memory.Record) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := put(context.Background(), rec)
		done <- err
	}()
	return done
}

// await waits for every done to report success; what names the wait that
// failed.
func await(t *testing.T, what string, done ...<-chan error) {
	t.Helper()
	for _, d := range done {
		select {
		case err := <-d:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal(what)
		}
	}
}

// Deferred writes wait for company, and a write that is not deferred takes
// them all into its commit at once: one fsync for the three.
func TestPutDeferredSharesTheNextCommit(t *testing.T) {
	var c commits
	// A delay no test run reaches: a deferred write that returned on its
	// own would have skipped the wait.
	db := openDB(t, memory.Config{CommitDelay: time.Hour, OnCommit: c.on})
	defer db.Close()
	before := c.count()
	first := putAsync(db.PutDeferred, turnRec("first"))
	second := putAsync(db.PutDeferred, turnRec("second"))
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-first:
		t.Fatalf("a deferred write committed alone, without waiting (err %v)", err)
	case err := <-second:
		t.Fatalf("a deferred write committed alone, without waiting (err %v)", err)
	default:
	}
	now := putAsync(db.Put, turnRec("now"))
	await(t, "the write that is not deferred did not end the deferred ones' wait", now, first, second)
	got := c.since(before)
	if len(got) != 1 || got[0].Requests != 3 || got[0].Records != 3 {
		t.Fatalf("commits after the deferred writes: %+v, want one of 3 requests and 3 records", got)
	}
	if got := texts(t, db); got["first"] != 1 || got["second"] != 1 || got["now"] != 1 {
		t.Errorf("records stored: %v, want first, second and now once each", got)
	}
}

// texts counts the stored records of namespace agent/a by their text.
func texts(t *testing.T, db *memory.DB) map[string]int {
	t.Helper()
	n := map[string]int{}
	for r, err := range db.Query(context.Background(), memory.Query{Namespace: "agent/a"}) {
		if err != nil {
			t.Fatal(err)
		}
		n[r.Text]++
	}
	return n
}

// A deferred write alone commits once the delay is over — the second one
// too, on the committer's timer from the first.
func TestPutDeferredWaitsAtMostTheDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	db := openDB(t, memory.Config{CommitDelay: delay})
	defer db.Close()
	for _, text := range []string{"alone", "alone again"} {
		start := time.Now()
		if _, err := db.PutDeferred(context.Background(), turnRec(text)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < delay {
			t.Errorf("deferred write %q alone committed after %v, before its delay of %v", text, took, delay)
		}
	}
}

// CommitDelay 0 is the default; a negative one stays negative, which is
// what makes the committer skip the wait (a deferred write then commits as
// a Put does).
func TestCommitDelayDefaults(t *testing.T) {
	for _, c := range []struct{ set, want time.Duration }{
		{0, memory.DefaultCommitDelay}, {-1, -1}, {5 * time.Millisecond, 5 * time.Millisecond},
	} {
		db := openDB(t, memory.Config{CommitDelay: c.set})
		got := memory.CommitDelayForTest(db)
		db.Close()
		if got != c.want {
			t.Errorf("CommitDelay %v: the store runs with %v, want %v", c.set, got, c.want)
		}
	}
}

// Close does not wait out a deferred write's delay: it commits it and
// returns.
func TestCloseEndsTheDeferredWait(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, memory.Config{Dir: dir, CommitDelay: time.Hour})
	done := putAsync(db.PutDeferred, turnRec("before close"))
	time.Sleep(100 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	await(t, "Close waited for a deferred write's delay", closed, done)
	db = openDB(t, memory.Config{Dir: dir})
	defer db.Close()
	if n := texts(t, db)["before close"]; n != 1 {
		t.Fatalf("%d records of the deferred write after reopening, want 1", n)
	}
}

// Flush commits a waiting deferred write at once, in one commit with it.
func TestFlushEndsTheDeferredWait(t *testing.T) {
	var c commits
	db := openDB(t, memory.Config{CommitDelay: time.Hour, OnCommit: c.on})
	defer db.Close()
	before := c.count()
	deferred := putAsync(db.PutDeferred, turnRec("deferred"))
	time.Sleep(100 * time.Millisecond)
	flushed := make(chan error, 1)
	go func() { flushed <- db.Flush(context.Background()) }()
	await(t, "Flush did not end the deferred write's wait", flushed, deferred)
	if got := c.since(before); len(got) != 1 || got[0].Records != 1 {
		t.Fatalf("commits: %+v, want one holding the deferred record", got)
	}
	if n := texts(t, db)["deferred"]; n != 1 {
		t.Fatalf("%d deferred records stored, want 1", n)
	}
}
