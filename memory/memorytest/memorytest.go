// Package memorytest is the conformance suite for memory.Store
// implementations: Put, Get, Query filters, ordering and limits, TTL,
// validation, concurrency, and — when the store implements them —
// memory.Watcher and memory.Facts.
//
// An implementation's tests call Run with a function that opens a fresh,
// empty store; Run closes it.
package memorytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/memory"
)

// Run runs the suite. open must return a new, empty store each call.
func Run(t *testing.T, open func(t *testing.T) memory.Store) {
	fresh := func(t *testing.T) memory.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("PutGet", func(t *testing.T) { testPutGet(t, fresh(t)) })
	t.Run("Validation", func(t *testing.T) { testValidation(t, fresh(t)) })
	t.Run("Seq", func(t *testing.T) { testSeq(t, fresh(t)) })
	t.Run("QueryFilters", func(t *testing.T) { testQueryFilters(t, fresh(t)) })
	t.Run("QueryErrors", func(t *testing.T) { testQueryErrors(t, fresh(t)) })
	t.Run("TTL", func(t *testing.T) { testTTL(t, fresh(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, fresh(t)) })
	t.Run("Watch", func(t *testing.T) {
		s := fresh(t)
		w, ok := s.(memory.Watcher)
		if !ok {
			t.Skipf("%T is not a memory.Watcher", s)
		}
		testWatch(t, s, w)
	})
	t.Run("Facts", func(t *testing.T) {
		s := fresh(t)
		f, ok := s.(memory.Facts)
		if !ok {
			t.Skipf("%T does not implement memory.Facts", s)
		}
		testFacts(t, s, f)
	})
}

func put(t *testing.T, s memory.Store, recs ...memory.Record) []memory.Record {
	t.Helper()
	out, err := s.Put(context.Background(), recs...)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(out) != len(recs) {
		t.Fatalf("Put returned %d records, want %d", len(out), len(recs))
	}
	return out
}

func collect(t *testing.T, s memory.Store, q memory.Query) []memory.Record {
	t.Helper()
	var out []memory.Record
	for rec, err := range s.Query(context.Background(), q) {
		if err != nil {
			t.Fatalf("Query(%+v): %v", q, err)
		}
		out = append(out, rec)
	}
	return out
}

func texts(recs []memory.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Text
	}
	return out
}

// same compares records as their JSON, which is what the Store promises to keep.
func same(t *testing.T, what string, got, want memory.Record) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func testPutGet(t *testing.T, s memory.Store) {
	ctx := context.Background()
	happened := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	in := memory.Record{
		Namespace: "agent/robot-1",
		Kind:      memory.KindObservation,
		Author:    "robot-1",
		Time:      happened,
		Text:      "pallet at dock 4",
		Data:      json.RawMessage(`{"dock":4,"ok":true}`),
		Tags:      []string{"dock", "pallet"},
		Key:       "dock-4",
		Embedding: &memory.Embedding{Model: "m", Vector: []float32{0.25, -1, 3.5e-9}},
	}
	before := time.Now()
	got := put(t, s, in)[0]
	if _, err := ulid.ParseStrict(got.ID); err != nil {
		t.Errorf("ID %q is not a ULID: %v", got.ID, err)
	}
	if got.Seq == 0 {
		t.Error("Seq is 0")
	}
	if got.Recorded.Before(before.Add(-time.Second)) || got.Recorded.After(time.Now().Add(time.Second)) {
		t.Errorf("Recorded %v is not about now", got.Recorded)
	}
	if !got.Time.Equal(happened) {
		t.Errorf("Time %v, want %v", got.Time, happened)
	}
	want := in
	want.ID, want.Seq, want.Recorded, want.Time = got.ID, got.Seq, got.Recorded, got.Time
	same(t, "Put result", got, want)

	back, err := s.Get(ctx, got.ID)
	if err != nil {
		t.Fatalf("Get(%s): %v", got.ID, err)
	}
	same(t, "Get", back, got)

	// Time defaults to Recorded.
	d := put(t, s, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "t"})[0]
	if !d.Time.Equal(d.Recorded) {
		t.Errorf("default Time %v, want Recorded %v", d.Time, d.Recorded)
	}

	if _, err := s.Get(ctx, ulid.Make().String()); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("Get(unknown ULID) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "not-an-id"); !errors.Is(err, memory.ErrNotFound) && !errors.Is(err, memory.ErrInvalid) {
		t.Errorf("Get(not-an-id) = %v, want ErrNotFound or ErrInvalid", err)
	}
	if out, err := s.Put(ctx); err != nil || len(out) != 0 {
		t.Errorf("Put() = %v, %v; want nothing", out, err)
	}
}

func testValidation(t *testing.T, s memory.Store) {
	ok := memory.Record{Namespace: "agent/robot-1", Kind: memory.KindReading, Text: "ok"}
	tests := []struct {
		name   string
		mod    func(*memory.Record)
		inErr  string // the error names the field or value
		target error
	}{
		{"empty namespace", func(r *memory.Record) { r.Namespace = "" }, "namespace", memory.ErrInvalid},
		{"leading slash", func(r *memory.Record) { r.Namespace = "/agent" }, `"/agent"`, memory.ErrInvalid},
		{"trailing slash", func(r *memory.Record) { r.Namespace = "agent/" }, `"agent/"`, memory.ErrInvalid},
		{"double slash", func(r *memory.Record) { r.Namespace = "agent//r" }, `"agent//r"`, memory.ErrInvalid},
		{"dotdot", func(r *memory.Record) { r.Namespace = "agent/../x" }, `"agent/../x"`, memory.ErrInvalid},
		{"space", func(r *memory.Record) { r.Namespace = "agent/robot 1" }, `"agent/robot 1"`, memory.ErrInvalid},
		{"empty kind", func(r *memory.Record) { r.Kind = "" }, "kind", memory.ErrInvalid},
		{"bad data", func(r *memory.Record) { r.Data = json.RawMessage(`{"a":`) }, "data", memory.ErrInvalid},
		{"empty embedding", func(r *memory.Record) { r.Embedding = &memory.Embedding{Model: "m"} }, "embedding", memory.ErrInvalid},
		{"fact without key", func(r *memory.Record) { r.Kind = memory.KindFact }, "key", memory.ErrInvalid},
		{"expired", func(r *memory.Record) { r.ExpiresAt = time.Now().Add(-time.Minute) }, "expires_at", memory.ErrInvalid},
		{"empty tag", func(r *memory.Record) { r.Tags = []string{"a", ""} }, "tags[1]", memory.ErrInvalid},
		{"too large", func(r *memory.Record) { r.Text = strings.Repeat("x", 8<<20) }, "", memory.ErrTooLarge},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := ok
			tt.mod(&bad)
			_, err := s.Put(ctx, ok, bad)
			if !errors.Is(err, tt.target) {
				t.Fatalf("Put = %v, want %v", err, tt.target)
			}
			if !strings.Contains(err.Error(), tt.inErr) {
				t.Errorf("error %q does not mention %q", err, tt.inErr)
			}
		})
	}
	// A rejected Put stores none of its records.
	if got := collect(t, s, memory.Query{}); len(got) != 0 {
		t.Errorf("after rejected Puts the store holds %d records, want 0", len(got))
	}
}

func testSeq(t *testing.T, s memory.Store) {
	var last uint64
	for i := range 20 {
		recs := make([]memory.Record, i%3+1)
		for j := range recs {
			recs[j] = memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: fmt.Sprint(i, j)}
		}
		for _, r := range put(t, s, recs...) {
			if r.Seq <= last {
				t.Fatalf("Seq %d after %d: not strictly increasing", r.Seq, last)
			}
			last = r.Seq
		}
	}
}

func testQueryFilters(t *testing.T, s memory.Store) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	// Stored in this order; Text is the label the cases expect.
	recs := []memory.Record{
		{Text: "a", Namespace: "agent/robot-1", Kind: memory.KindObservation, Author: "robot-1", Time: at(0), Tags: []string{"dock"}},
		{Text: "b", Namespace: "agent/robot-10", Kind: memory.KindObservation, Author: "robot-10", Time: at(1), Tags: []string{"dock", "night"}},
		{Text: "c", Namespace: "agent/robot-1/arm", Kind: memory.KindReading, Author: "robot-1", Time: at(2), Key: "torque"},
		{Text: "d", Namespace: "fleet/site-a", Kind: memory.KindMessage, Author: "dispatcher", Time: at(3), Tags: []string{"night"}},
		{Text: "e", Namespace: "agent/robot-1", Kind: memory.KindReading, Author: "robot-1", Time: at(4), Tags: []string{"dock", "night"}, Key: "torque"},
		{Text: "f", Namespace: "fleet", Kind: memory.KindTask, Author: "dispatcher", Time: at(5)},
		{Text: "g", Namespace: "agent/robot-1", Kind: memory.KindMessage, Author: "operator", Time: at(6)},
	}
	var stored []memory.Record
	for _, r := range recs {
		stored = append(stored, put(t, s, r)...)
	}
	tests := []struct {
		name string
		q    memory.Query
		want string // labels in result order
	}{
		{"all newest first", memory.Query{}, "gfedcba"},
		{"all ascending", memory.Query{Ascending: true}, "abcdefg"},
		{"limit", memory.Query{Limit: 3}, "gfe"},
		{"limit ascending", memory.Query{Limit: 2, Ascending: true}, "ab"},
		{"namespace subtree", memory.Query{Namespace: "agent/robot-1"}, "geca"},
		{"namespace not a string prefix", memory.Query{Namespace: "agent/robot-10"}, "b"},
		{"namespace parent", memory.Query{Namespace: "agent"}, "gecba"},
		{"namespace fleet", memory.Query{Namespace: "fleet", Ascending: true}, "df"},
		{"unknown namespace", memory.Query{Namespace: "nowhere"}, ""},
		{"kind", memory.Query{Kinds: []memory.Kind{memory.KindReading}}, "ec"},
		{"kinds any of", memory.Query{Kinds: []memory.Kind{memory.KindReading, memory.KindTask}}, "fec"},
		{"kind in namespace", memory.Query{Namespace: "agent", Kinds: []memory.Kind{memory.KindObservation}}, "ba"},
		{"author", memory.Query{Author: "robot-1"}, "eca"},
		{"author exact", memory.Query{Author: "robot"}, ""},
		{"tag", memory.Query{Tags: []string{"night"}}, "edb"},
		{"tags all of", memory.Query{Tags: []string{"dock", "night"}}, "eb"},
		{"key", memory.Query{Key: "torque"}, "ec"},
		{"key and namespace", memory.Query{Key: "torque", Namespace: "agent/robot-1/arm"}, "c"},
		{"since", memory.Query{Since: at(4)}, "gfe"},
		{"until", memory.Query{Until: at(2)}, "ba"},
		{"time range", memory.Query{Since: at(1), Until: at(3), Ascending: true}, "bc"},
		{"after seq", memory.Query{AfterSeq: stored[4].Seq, Ascending: true}, "fg"},
		{"after seq newest", memory.Query{AfterSeq: stored[4].Seq}, "gf"},
		{"after seq with limit", memory.Query{AfterSeq: stored[1].Seq, Limit: 2, Ascending: true}, "cd"},
		{"combined", memory.Query{Namespace: "agent", Author: "robot-1", Tags: []string{"dock"}, Since: at(0), Limit: 1}, "e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(texts(collect(t, s, tt.q)), "")
			if got != tt.want {
				t.Errorf("Query(%+v) = %q, want %q", tt.q, got, tt.want)
			}
		})
	}
	t.Run("stop early", func(t *testing.T) {
		n := 0
		for _, err := range s.Query(context.Background(), memory.Query{}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 2 {
				break
			}
		}
		if n != 2 {
			t.Errorf("read %d records, want 2", n)
		}
	})
}

func testQueryErrors(t *testing.T, s memory.Store) {
	for _, q := range []memory.Query{
		{Limit: -1},
		{Namespace: "bad//ns"},
		{Kinds: []memory.Kind{""}},
	} {
		var err error
		for _, e := range s.Query(context.Background(), q) {
			if e != nil {
				err = e
				break
			}
		}
		if !errors.Is(err, memory.ErrInvalid) {
			t.Errorf("Query(%+v) error = %v, want ErrInvalid", q, err)
		}
	}
}

func testTTL(t *testing.T, s memory.Store) {
	ctx := context.Background()
	exp := time.Now().Add(300 * time.Millisecond)
	recs := put(t, s,
		memory.Record{Namespace: "shared", Kind: memory.KindReading, Text: "short", ExpiresAt: exp},
		memory.Record{Namespace: "shared", Kind: memory.KindReading, Text: "long", ExpiresAt: time.Now().Add(time.Hour)},
		memory.Record{Namespace: "shared", Kind: memory.KindReading, Text: "forever"})
	if got := strings.Join(texts(collect(t, s, memory.Query{})), ","); got != "forever,long,short" {
		t.Fatalf("before expiry: %q", got)
	}
	time.Sleep(time.Until(exp) + 50*time.Millisecond)
	if got := strings.Join(texts(collect(t, s, memory.Query{Namespace: "shared", Kinds: []memory.Kind{memory.KindReading}})), ","); got != "forever,long" {
		t.Errorf("after expiry: %q, want forever,long", got)
	}
	if got := strings.Join(texts(collect(t, s, memory.Query{Ascending: true})), ","); got != "long,forever" {
		t.Errorf("after expiry ascending: %q, want long,forever", got)
	}
	if _, err := s.Get(ctx, recs[0].ID); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("Get(expired) = %v, want ErrNotFound", err)
	}
}

func testConcurrent(t *testing.T, s memory.Store) {
	const writers, each = 8, 40
	var mu sync.Mutex
	ids := map[string]uint64{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				out, err := s.Put(context.Background(),
					memory.Record{Namespace: fmt.Sprintf("agent/w%d", w), Kind: memory.KindMessage, Text: fmt.Sprint(i)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ids[out[0].ID] = out[0].Seq
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(ids) != writers*each {
		t.Fatalf("%d distinct IDs, want %d", len(ids), writers*each)
	}
	all := collect(t, s, memory.Query{Namespace: "agent", Ascending: true})
	if len(all) != writers*each {
		t.Fatalf("query returned %d records, want %d", len(all), writers*each)
	}
	seqs := map[uint64]bool{}
	for i, r := range all {
		if i > 0 && r.Seq <= all[i-1].Seq {
			t.Fatalf("ascending query out of order at %d: %d after %d", i, r.Seq, all[i-1].Seq)
		}
		if ids[r.ID] != r.Seq {
			t.Fatalf("record %s has Seq %d, Put said %d", r.ID, r.Seq, ids[r.ID])
		}
		seqs[r.Seq] = true
	}
	// Per writer, commit order is the order of its own Puts.
	for w := range writers {
		got := texts(collect(t, s, memory.Query{Namespace: fmt.Sprintf("agent/w%d", w), Ascending: true}))
		for i, x := range got {
			if x != fmt.Sprint(i) {
				t.Fatalf("writer %d: record %d is %q", w, i, x)
			}
		}
	}
}

// next reads one item from a pulled watch, failing after a generous timeout
// (a hang, not a timing assertion).
func next(t *testing.T, nextFn func() (memory.Record, error, bool)) memory.Record {
	t.Helper()
	type res struct {
		r   memory.Record
		err error
		ok  bool
	}
	ch := make(chan res, 1)
	go func() {
		r, err, ok := nextFn()
		ch <- res{r, err, ok}
	}()
	select {
	case x := <-ch:
		if x.err != nil || !x.ok {
			t.Fatalf("watch: %v (ok=%v)", x.err, x.ok)
		}
		return x.r
	case <-time.After(10 * time.Second):
		t.Fatal("watch yielded nothing for 10s")
		return memory.Record{}
	}
}

func testWatch(t *testing.T, s memory.Store, w memory.Watcher) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if w.LastSeq() != 0 {
		t.Errorf("LastSeq of an empty store = %d", w.LastSeq())
	}
	obs := func(ns, text string) memory.Record {
		return memory.Record{Namespace: ns, Kind: memory.KindObservation, Text: text}
	}
	first := put(t, s, obs("agent/robot-1", "1"), obs("agent/robot-2", "x"), obs("agent/robot-1", "2"))
	if w.LastSeq() != first[2].Seq {
		t.Errorf("LastSeq = %d, want %d", w.LastSeq(), first[2].Seq)
	}

	t.Run("catch up then live", func(t *testing.T) {
		nextFn, stop := iter.Pull2(w.Watch(ctx, memory.Query{Namespace: "agent/robot-1"}))
		defer stop()
		for _, want := range []string{"1", "2"} {
			if got := next(t, nextFn); got.Text != want {
				t.Fatalf("got %q, want %q", got.Text, want)
			}
		}
		put(t, s, obs("agent/robot-2", "y"), obs("agent/robot-1", "3"))
		if got := next(t, nextFn); got.Text != "3" {
			t.Fatalf("live: got %q, want 3", got.Text)
		}
	})

	t.Run("from LastSeq", func(t *testing.T) {
		from := w.LastSeq()
		nextFn, stop := iter.Pull2(w.Watch(ctx, memory.Query{AfterSeq: from}))
		defer stop()
		put(t, s, obs("shared", "new"))
		if got := next(t, nextFn); got.Text != "new" || got.Seq <= from {
			t.Fatalf("got %q seq %d, want new after %d", got.Text, got.Seq, from)
		}
	})

	t.Run("slow watcher misses nothing", func(t *testing.T) {
		from := w.LastSeq()
		nextFn, stop := iter.Pull2(w.Watch(ctx, memory.Query{Namespace: "slow", AfterSeq: from}))
		defer stop()
		put(t, s, obs("slow", "0"))
		if got := next(t, nextFn); got.Text != "0" {
			t.Fatalf("got %q, want 0", got.Text)
		}
		// The watcher reads nothing while many commits happen; writers must
		// not block on it.
		const n = 600
		for i := 1; i <= n; i++ {
			put(t, s, obs("slow", fmt.Sprint(i)), obs("other", "noise"))
		}
		for i := 1; i <= n; i++ {
			if got := next(t, nextFn); got.Text != fmt.Sprint(i) {
				t.Fatalf("record %d: got %q", i, got.Text)
			}
		}
	})

	t.Run("ends with ctx", func(t *testing.T) {
		// Cancel a watch that is live (it has yielded), not one that has
		// yet to start.
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		from := w.LastSeq()
		live := make(chan struct{}, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, err := range w.Watch(wctx, memory.Query{AfterSeq: from}) {
				if err != nil {
					return
				}
				select {
				case live <- struct{}{}:
				default:
				}
			}
		}()
		put(t, s, obs("shared", "wake"))
		select {
		case <-live:
		case <-time.After(10 * time.Second):
			t.Fatal("watch yielded nothing for 10s")
		}
		wcancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("watch did not end after its ctx was cancelled")
		}
	})
}

func testFacts(t *testing.T, s memory.Store, f memory.Facts) {
	ctx := context.Background()
	fact := func(v string, at time.Time) memory.Record {
		return memory.Record{Namespace: "fleet/site-a", Kind: memory.KindFact, Key: "dock-4", Text: v, Time: at}
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	v1 := put(t, s, fact("free", t0))[0]
	v2, err := f.PutFact(ctx, fact("busy", t0.Add(time.Hour)), v1.Seq)
	if err != nil {
		t.Fatalf("PutFact(expected %d): %v", v1.Seq, err)
	}
	if _, err := f.PutFact(ctx, fact("stale", t0.Add(2*time.Hour)), v1.Seq); !errors.Is(err, memory.ErrConflict) {
		t.Fatalf("PutFact with a stale seq = %v, want ErrConflict", err)
	}
	if _, err := f.PutFact(ctx, fact("new", t0), 0); !errors.Is(err, memory.ErrConflict) {
		t.Fatalf("PutFact expecting none = %v, want ErrConflict", err)
	}
	cur, err := f.Fact(ctx, "fleet/site-a", "dock-4")
	if err != nil || cur.ID != v2.ID || !cur.ValidTo.IsZero() {
		t.Fatalf("Fact = %+v, %v; want %s with no ValidTo", cur, err, v2.ID)
	}
	hist, err := f.History(ctx, "fleet/site-a", "dock-4")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(texts(hist), ","); got != "free,busy" {
		t.Fatalf("History = %q, want free,busy", got)
	}
	if !hist[0].ValidTo.Equal(v2.Time) || !hist[1].ValidTo.IsZero() {
		t.Errorf("ValidTo = %v, %v; want %v, zero", hist[0].ValidTo, hist[1].ValidTo, v2.Time)
	}
	if old, err := s.Get(ctx, v1.ID); err != nil || !old.ValidTo.Equal(v2.Time) {
		t.Errorf("Get(superseded) = ValidTo %v, %v; want %v", old.ValidTo, err, v2.Time)
	}
	if _, err := f.Fact(ctx, "fleet/site-a", "nothing"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("Fact(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := f.PutFact(ctx, memory.Record{Namespace: "fleet", Kind: memory.KindFact}, 0); !errors.Is(err, memory.ErrInvalid) {
		t.Errorf("PutFact without key = %v, want ErrInvalid", err)
	}

	t.Run("concurrent read-modify-write loses no update", func(t *testing.T) {
		const workers, incs = 6, 15
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		conflicts := make(chan int, workers)
		for range workers {
			wg.Go(func() {
				c := 0
				for range incs {
					for {
						var n int
						var seq uint64
						if cur, err := f.Fact(ctx, "shared", "counter"); err == nil {
							fmt.Sscan(cur.Text, &n)
							seq = cur.Seq
						} else if !errors.Is(err, memory.ErrNotFound) {
							errs <- err
							return
						}
						_, err := f.PutFact(ctx, memory.Record{Namespace: "shared", Kind: memory.KindFact, Key: "counter", Text: fmt.Sprint(n + 1)}, seq)
						if err == nil {
							break
						}
						if !errors.Is(err, memory.ErrConflict) {
							errs <- err
							return
						}
						c++
					}
				}
				conflicts <- c
			})
		}
		wg.Wait()
		close(errs)
		close(conflicts)
		for err := range errs {
			t.Fatal(err)
		}
		total := 0
		for c := range conflicts {
			total += c
		}
		cur, err := f.Fact(ctx, "shared", "counter")
		if err != nil {
			t.Fatal(err)
		}
		if cur.Text != fmt.Sprint(workers*incs) {
			t.Errorf("counter = %s, want %d (a lost update)", cur.Text, workers*incs)
		}
		hist, err := f.History(ctx, "shared", "counter")
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != workers*incs {
			t.Errorf("history has %d versions, want %d", len(hist), workers*incs)
		}
		t.Logf("%d conflicts retried", total)
	})
}
