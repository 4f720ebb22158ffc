package recall_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/embed"
	"github.com/depai/depai/memory/embed/embedtest"
	"github.com/depai/depai/memory/recall"
)

// The tests run on the real badger store (memory.Open) and, for embeddings,
// on embedtest: a real HTTP server on 127.0.0.1 speaking the OpenAI
// /v1/embeddings wire format whose vectors are scripted (hashed bag of words).

// newStore opens a store in a new temporary directory, closed when the test
// ends, and returns it with that directory (the store is in dir/store).
func newStore(t *testing.T) (db *memory.DB, dir string) {
	t.Helper()
	dir = t.TempDir()
	db, err := memory.Open(context.Background(), memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

// newServer starts an embedtest server of dims dimensions, closed when the
// test ends.
func newServer(t *testing.T, dims int) *embedtest.Server {
	t.Helper()
	srv := embedtest.New(dims)
	t.Cleanup(srv.Close)
	return srv
}

func newEmbedder(t *testing.T, srv *embedtest.Server, model string) *embed.Client {
	t.Helper()
	c, err := embed.New(embed.Config{BaseURL: srv.URL(), Model: model, Backoff: time.Millisecond, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openIndex(t *testing.T, cfg recall.Config) *recall.Index {
	t.Helper()
	x, err := recall.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.WaitLoaded(context.Background()); err != nil {
		t.Fatal(err)
	}
	return x
}

func put(t *testing.T, db memory.Store, recs ...memory.Record) []memory.Record {
	t.Helper()
	out, err := db.Put(context.Background(), recs...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sync(t *testing.T, x *recall.Index) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := x.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

func search(t *testing.T, x *recall.Index, q recall.Query) []recall.Hit {
	t.Helper()
	hits, err := x.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func texts(hits []recall.Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Record.Text
	}
	return out
}

var corpus = []memory.Record{
	{Namespace: "agent/robot-1", Kind: memory.KindObservation, Author: "robot-1", Text: "battery low at dock 3", Tags: []string{"power", "dock"}},
	{Namespace: "agent/robot-1", Kind: memory.KindObservation, Author: "robot-1", Text: "obstacle in aisle 7, rerouting"},
	{Namespace: "agent/robot-10", Kind: memory.KindReading, Author: "robot-10", Text: "battery 81 percent", Tags: []string{"power"}},
	{Namespace: "fleet/site-a", Kind: memory.KindFact, Author: "dispatcher", Key: "dock-3", Text: "dock 3 charger is out of service", Tags: []string{"dock"}},
	{Namespace: "shared", Kind: memory.KindMessage, Author: "operator", Text: "please send a robot to the dock with a full battery"},
}

func TestBM25Only(t *testing.T) {
	db, dir := newStore(t)
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
	defer x.Close()
	if got, want := x.Mode(), "bm25 only (no embeddings endpoint configured)"; got != want {
		t.Errorf("Mode = %q, want %q", got, want)
	}
	put(t, db, corpus...)
	sync(t, x)
	hits := search(t, x, recall.Query{Text: "battery dock"})
	if len(hits) != 4 {
		t.Fatalf("hits %q, want the 4 records mentioning battery or dock", texts(hits))
	}
	// "battery low at dock 3" holds both words in 5 tokens; it must lead.
	if hits[0].Record.Text != corpus[0].Text || hits[0].BM25Rank != 1 || hits[0].VectorRank != 0 {
		t.Errorf("first hit %+v, want %q at BM25 rank 1 and no vector rank", hits[0], corpus[0].Text)
	}
	for i := 1; i < len(hits); i++ {
		if hits[i].Score > hits[i-1].Score {
			t.Errorf("hits not in score order: %v", hits)
		}
	}
	if s := x.Stats(); s.Docs != len(corpus) || s.Vectors != 0 || s.Cursor != db.LastSeq() {
		t.Errorf("Stats = %+v", s)
	}
}

func TestFilters(t *testing.T) {
	db, dir := newStore(t)
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
	defer x.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]memory.Record, len(corpus))
	copy(recs, corpus)
	for i := range recs {
		recs[i].Time = t0.Add(time.Duration(i) * time.Hour)
	}
	expired := memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "battery dock expired soon", ExpiresAt: time.Now().Add(300 * time.Millisecond)}
	put(t, db, recs...)
	put(t, db, expired)
	sync(t, x)
	tests := []struct {
		name   string
		filter memory.Query
		within []string
		want   []string // texts, any order
	}{
		{"namespace and below, not robot-10", memory.Query{Namespace: "agent/robot-1"}, nil, []string{corpus[0].Text}},
		{"parent namespace", memory.Query{Namespace: "agent"}, nil, []string{corpus[0].Text, corpus[2].Text}},
		{"kind", memory.Query{Kinds: []memory.Kind{memory.KindReading, memory.KindFact}}, nil, []string{corpus[2].Text, corpus[3].Text}},
		{"unknown kind", memory.Query{Kinds: []memory.Kind{"nope"}}, nil, nil},
		{"author", memory.Query{Author: "operator"}, nil, []string{corpus[4].Text}},
		{"tags all of", memory.Query{Tags: []string{"power", "dock"}}, nil, []string{corpus[0].Text}},
		{"unknown tag", memory.Query{Tags: []string{"power", "nope"}}, nil, nil},
		{"key", memory.Query{Key: "dock-3"}, nil, []string{corpus[3].Text}},
		{"time range", memory.Query{Since: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)}, nil, []string{corpus[2].Text}},
		{"after seq", memory.Query{AfterSeq: db.LastSeq() - 2}, nil, []string{corpus[4].Text, expired.Text}},
		{"within grants", memory.Query{}, []string{"agent/robot-10", "fleet"}, []string{corpus[2].Text, corpus[3].Text}},
		{"within and namespace", memory.Query{Namespace: "agent"}, []string{"agent/robot-10", "fleet"}, []string{corpus[2].Text}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := texts(search(t, x, recall.Query{Text: "battery dock", Filter: tt.filter, Within: tt.within}))
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tt.want))) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// A newer version of a fact hides the old one.
	put(t, db, memory.Record{Namespace: "fleet/site-a", Kind: memory.KindFact, Key: "dock-3", Text: "dock 3 charger repaired"})
	sync(t, x)
	if got := texts(search(t, x, recall.Query{Text: "dock charger", Filter: memory.Query{Key: "dock-3"}})); len(got) != 1 || got[0] != "dock 3 charger repaired" {
		t.Errorf("fact dock-3: got %q, want only the current version", got)
	}
	time.Sleep(time.Until(expired.ExpiresAt) + 10*time.Millisecond)
	for _, h := range search(t, x, recall.Query{Text: "expired"}) {
		t.Errorf("expired record recalled: %q", h.Record.Text)
	}
}

func TestHybrid(t *testing.T) {
	srv := newServer(t, 32)
	db, dir := newStore(t)
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "test-embed"), EmbedBatch: 2})
	defer x.Close()
	// One record brings its own vector of the index's model: it is used as is.
	own := memory.Record{Namespace: "shared", Kind: memory.KindObservation, Text: "charger fault reported",
		Embedding: &memory.Embedding{Model: "test-embed", Vector: embedtest.Vector("charger fault reported", 32)}}
	put(t, db, corpus...)
	put(t, db, own)
	sync(t, x)
	if _, inputs := srv.Requests(); inputs != len(corpus) {
		t.Errorf("server embedded %d texts, want %d (the record with its own vector is not re-embedded)", inputs, len(corpus))
	}
	if got, want := x.Mode(), "hybrid: bm25 + test-embed (32d)"; got != want {
		t.Errorf("Mode = %q, want %q", got, want)
	}
	if s := x.Stats(); s.Vectors != len(corpus)+1 || s.PendingEmbeds != 0 || s.LastError != "" {
		t.Fatalf("Stats = %+v", s)
	}
	hits := search(t, x, recall.Query{Text: "battery low dock", K: 3})
	if len(hits) != 3 || hits[0].Record.Text != corpus[0].Text || hits[0].BM25Rank != 1 || hits[0].VectorRank != 1 {
		t.Fatalf("hits %+v, want %q first in both rankings", hits, corpus[0].Text)
	}
	// Only the vector ranking can find a record sharing no word with the query
	// but it must still obey the filter.
	hits = search(t, x, recall.Query{Text: "charger fault", Filter: memory.Query{Namespace: "shared"}})
	if len(hits) == 0 || hits[0].Record.Text != own.Text || hits[0].VectorRank != 1 {
		t.Fatalf("hits %+v, want %q first", hits, own.Text)
	}
	for _, h := range hits {
		if h.Record.Namespace != "shared" {
			t.Errorf("hit outside namespace: %+v", h.Record)
		}
	}
}

func TestReopen(t *testing.T) {
	srv := newServer(t, 16)
	db, dir := newStore(t)
	cfg := recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "m1")}
	x := openIndex(t, cfg)
	put(t, db, corpus...)
	sync(t, x)
	before := search(t, x, recall.Query{Text: "battery dock"})
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	_, embedded := srv.Requests()

	cfg.Embedder = newEmbedder(t, srv, "m1") // a fresh client: an empty cache
	x = openIndex(t, cfg)
	sync(t, x)
	if _, n := srv.Requests(); n != embedded {
		t.Errorf("after reopen the server embedded %d more texts, want 0 (stored vectors are reused)", n-embedded)
	}
	after := search(t, x, recall.Query{Text: "battery dock"})
	if fmt.Sprint(texts(after)) != fmt.Sprint(texts(before)) {
		t.Errorf("after reopen %q, before %q", texts(after), texts(before))
	}
	// Tags are saved as hashes: the filter still holds after a reopen.
	if got := texts(search(t, x, recall.Query{Text: "battery dock", Filter: memory.Query{Tags: []string{"power", "dock"}}})); len(got) != 1 || got[0] != corpus[0].Text {
		t.Errorf("after reopen, tags power and dock: %q, want only %q", got, corpus[0].Text)
	}
	x.Close()

	// Records committed while the index is closed are caught up on open.
	late := put(t, db, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "late battery news"})[0]
	_, embedded = srv.Requests()
	x = openIndex(t, cfg)
	defer x.Close()
	sync(t, x)
	if _, n := srv.Requests(); n != embedded+1 {
		t.Errorf("catching up embedded %d texts, want 1", n-embedded)
	}
	if s := x.Stats(); s.Docs != len(corpus)+1 || s.Vectors != len(corpus)+1 || s.Cursor != late.Seq {
		t.Errorf("Stats after reopen = %+v", s)
	}
	if hits := search(t, x, recall.Query{Text: "late news"}); len(hits) == 0 || hits[0].Record.ID != late.ID {
		t.Errorf("late record not recalled first: %q", texts(hits))
	}
}

const crashEnv = "DEPAI_RECALL_CRASH_DIR"

// TestCrashReusesStoredVectors: a vector is stored as soon as it is
// embedded, the document table only at a checkpoint. The test re-executes
// itself as a child that indexes the corpus and SIGKILLs itself before any
// checkpoint; reopening reads the records again from the store and must
// reuse the vectors stored past the checkpoint, not embed the texts again.
func TestCrashReusesStoredVectors(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(t, dir, os.Getenv(crashEnv+"_URL"))
		return
	}
	srv := newServer(t, 16)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashReusesStoredVectors$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_URL="+srv.URL())
	out, err := cmd.CombinedOutput()
	if !strings.Contains(string(out), "indexed, killing") {
		t.Fatalf("child did not index the corpus (%v): %s", err, out)
	}
	_, embedded := srv.Requests()
	if embedded != len(corpus) {
		t.Fatalf("child embedded %d texts, want %d", embedded, len(corpus))
	}
	db, err := memory.Open(context.Background(), memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "m1")})
	defer x.Close()
	sync(t, x)
	if _, n := srv.Requests(); n != embedded {
		t.Errorf("after the crash the index embedded %d texts again, want 0 (their vectors were stored)", n-embedded)
	}
	if s := x.Stats(); s.Docs != len(corpus) || s.Vectors != len(corpus) || s.PendingEmbeds != 0 {
		t.Errorf("Stats after the crash = %+v", s)
	}
}

func crashChild(t *testing.T, dir, url string) {
	ctx := context.Background()
	db, err := memory.Open(ctx, memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := embed.New(embed.Config{BaseURL: url, Model: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: emb})
	put(t, db, corpus...)
	sync(t, x)
	// Well within the second of quiet after which the index checkpoints.
	fmt.Println("indexed, killing")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestModelChangeReembeds(t *testing.T) {
	srv := newServer(t, 16)
	db, dir := newStore(t)
	cfg := recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "m1")}
	x := openIndex(t, cfg)
	put(t, db, corpus...)
	sync(t, x)
	x.Close()
	_, before := srv.Requests()
	cfg.Embedder = newEmbedder(t, srv, "m2")
	x = openIndex(t, cfg)
	defer x.Close()
	sync(t, x)
	if _, n := srv.Requests(); n-before != len(corpus) {
		t.Errorf("model change re-embedded %d texts, want %d", n-before, len(corpus))
	}
	if s := x.Stats(); s.Vectors != len(corpus) || s.PendingEmbeds != 0 {
		t.Errorf("Stats = %+v", s)
	}
	if got := x.Mode(); got != "hybrid: bm25 + m2 (16d)" {
		t.Errorf("Mode = %q", got)
	}
}

func TestWrongDimensions(t *testing.T) {
	srv := newServer(t, 16)
	db, dir := newStore(t)
	emb := newEmbedder(t, srv, "m1")
	if _, err := emb.Embed(context.Background(), []string{"learn the size"}); err != nil {
		t.Fatal(err)
	}
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: emb})
	defer x.Close()

	// A record carrying a vector of the wrong size: a clear error, and its
	// text is embedded by the index instead.
	put(t, db, memory.Record{Namespace: "shared", Kind: memory.KindObservation, Text: "pump pressure high",
		Embedding: &memory.Embedding{Model: "m1", Vector: []float32{1, 2, 3}}})
	sync(t, x)
	if s := x.Stats(); !strings.Contains(s.LastError, "got 3 dimensions") || s.Vectors != 1 {
		t.Errorf("Stats = %+v, want a dimensions error and the text embedded", s)
	}
	// The endpoint answering with the wrong size: a clear error, the record
	// stays searchable by BM25.
	srv.Script(embedtest.Fault{Dims: 5})
	put(t, db, memory.Record{Namespace: "shared", Kind: memory.KindObservation, Text: "valve stuck open"})
	sync(t, x)
	if s := x.Stats(); !strings.Contains(s.LastError, "returned 5 dimensions, want 16") {
		t.Errorf("Stats = %+v, want the endpoint's dimensions error", s)
	}
	hits := search(t, x, recall.Query{Text: "valve"})
	if len(hits) == 0 || hits[0].Record.Text != "valve stuck open" || hits[0].BM25Rank != 1 || hits[0].VectorRank != 0 {
		t.Errorf("hits %+v, want the valve record first, by BM25 alone", hits)
	}
}

// TestGraphPartition drives a namespace past ExactBelow so it is searched
// through HNSW, and checks results against the exact answer.
func TestGraphPartition(t *testing.T) {
	srv := newServer(t, 16)
	db, dir := newStore(t)
	cfg := recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "m1"), ExactBelow: 100}
	x := openIndex(t, cfg)
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}
	var recs []memory.Record
	for i := 0; i < 300; i++ {
		text := fmt.Sprintf("%s %s %s item%d", words[i%8], words[(i/8)%8], words[(i/64)%8], i)
		recs = append(recs, memory.Record{Namespace: "fleet/a", Kind: memory.KindReading, Text: text,
			Embedding: &memory.Embedding{Model: "m1", Vector: embedtest.Vector(text, 16)}})
	}
	put(t, db, recs...)
	sync(t, x)
	waitGraphs(t, x, 1)
	hits := search(t, x, recall.Query{Text: "item42"})
	if len(hits) == 0 || hits[0].Record.Text != recs[42].Text {
		t.Fatalf("hits %q, want %q first", texts(hits), recs[42].Text)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// Close saved the graph: reopening loads it, with no rebuild. A Close
	// that changed nothing keeps the stored graph; one after a new vector
	// stores it again.
	for round, more := range []string{"", "", "golf hotel item300", ""} {
		x = openIndex(t, cfg)
		s, vectors := x.Stats(), len(recs)
		last := recs[len(recs)-1]
		hits = search(t, x, recall.Query{Text: last.Text[strings.LastIndexByte(last.Text, ' ')+1:]}) // its itemN
		if more != "" {
			recs = append(recs, put(t, db, memory.Record{Namespace: "fleet/a", Kind: memory.KindReading, Text: more,
				Embedding: &memory.Embedding{Model: "m1", Vector: embedtest.Vector(more, 16)}})...)
			sync(t, x)
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		if s.Graphs != 1 || s.Vectors != vectors {
			t.Fatalf("reopen %d: Stats = %+v, want the stored graph and %d vectors", round, s, vectors)
		}
		if len(hits) == 0 || hits[0].Record.Text != last.Text {
			t.Fatalf("reopen %d: hits %q, want %q first", round, texts(hits), last.Text)
		}
	}
}

// TestSearchAfterClose: Close saves the graphs and closes their logs and
// the badger, so a search that comes after it (an agent's turn racing shutdown)
// gets an error, not a search through them.
func TestSearchAfterClose(t *testing.T) {
	srv := newServer(t, 16)
	db, dir := newStore(t)
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "m1"), ExactBelow: 100})
	var recs []memory.Record
	for i := range 400 {
		text := fmt.Sprintf("alpha w%d item%d", i%13, i)
		recs = append(recs, memory.Record{Namespace: fmt.Sprintf("fleet/%c", 'a'+i%2), Kind: memory.KindReading, Text: text,
			Embedding: &memory.Embedding{Model: "m1", Vector: embedtest.Vector(text, 16)}})
	}
	put(t, db, recs...)
	sync(t, x)
	waitGraphs(t, x, 2)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if hits, err := x.Search(context.Background(), recall.Query{Text: "alpha w3"}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Search after Close = %d hits, %v; want an error saying the index is closed", len(hits), err)
	}
}

func waitGraphs(t *testing.T, x *recall.Index, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); x.Stats().Graphs < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("graph not built: %+v", x.Stats())
		}
	}
}

func TestBadInput(t *testing.T) {
	db, dir := newStore(t)
	if _, err := recall.Open(context.Background(), recall.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "Config.Source") {
		t.Errorf("Open without Source: %v", err)
	}
	if _, err := recall.Open(context.Background(), recall.Config{Source: db}); err == nil || !strings.Contains(err.Error(), "Config.Dir") {
		t.Errorf("Open without Dir: %v", err)
	}
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
	defer x.Close()
	for _, tt := range []struct {
		q    recall.Query
		want string
	}{
		{recall.Query{}, "Query.Text is empty"},
		{recall.Query{Text: "x", K: -1}, "Query.K -1"},
		{recall.Query{Text: "x", K: 5000}, "Query.K 5000"},
		{recall.Query{Text: "x", Filter: memory.Query{Limit: 3}}, "Query.Filter.Limit 3"},
		{recall.Query{Text: "x", Floor: 1.5}, "Query.Floor 1.5"},
		{recall.Query{Text: "x", Floor: math.NaN()}, "Query.Floor NaN"},
	} {
		if _, err := x.Search(context.Background(), tt.q); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Search(%+v) = %v, want an error containing %q", tt.q, err, tt.want)
		}
	}
}

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "recall-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := memory.Open(ctx, memory.Config{Dir: filepath.Join(dir, "store")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	x, err := recall.Open(ctx, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer x.Close()
	db.Put(ctx, memory.Record{Namespace: "agent/robot-1", Kind: memory.KindObservation, Text: "battery low at dock 3"})
	x.Sync(ctx)
	hits, _ := x.Search(ctx, recall.Query{Text: "battery", Filter: memory.Query{Namespace: "agent"}})
	fmt.Println(x.Mode())
	fmt.Println(len(hits), hits[0].Record.Text)
	// Output:
	// bm25 only (no embeddings endpoint configured)
	// 1 battery low at dock 3
}

// TestConcurrentSearchDuringIngest searches while records stream in and are
// embedded; run with -race.
func TestConcurrentSearchDuringIngest(t *testing.T) {
	srv := newServer(t, 16)
	db, dir := newStore(t)
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "m1"), ExactBelow: 50, CheckpointEvery: 40})
	defer x.Close()
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := x.Search(context.Background(), recall.Query{Text: "reading sensor", Filter: memory.Query{Namespace: "fleet"}}); err != nil {
				errs <- err
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		var recs []memory.Record
		for j := 0; j < 10; j++ {
			recs = append(recs, memory.Record{Namespace: "fleet/a", Kind: memory.KindReading, Text: fmt.Sprintf("sensor reading %d batch %d", j, i)})
		}
		put(t, db, recs...)
	}
	sync(t, x)
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if s := x.Stats(); s.Docs != 200 || s.Vectors != 200 {
		t.Fatalf("Stats = %+v", s)
	}
	waitGraphs(t, x, 1)
	hits := search(t, x, recall.Query{Text: "sensor reading 7 batch 13", K: 1})
	if len(hits) != 1 || hits[0].Record.Text != "sensor reading 7 batch 13" {
		t.Fatalf("hits %q", texts(hits))
	}
}

func TestCorruptIndexDir(t *testing.T) {
	db, dir := newStore(t)
	put(t, db, corpus[0])
	idx := filepath.Join(dir, "recall")
	if err := os.MkdirAll(idx, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(idx, "MANIFEST"), []byte("not a manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The index is derived data: a damaged one is rebuilt from the store.
	x := openIndex(t, recall.Config{Source: db, Dir: idx})
	defer x.Close()
	sync(t, x)
	if hits := search(t, x, recall.Query{Text: "battery"}); len(hits) != 1 {
		t.Fatalf("hits %q", texts(hits))
	}
	if s := x.Stats(); !strings.Contains(s.LastError, "rebuilt") || !s.Ready {
		t.Errorf("Stats = %+v, want ready and LastError saying the index was rebuilt", s)
	}
}

// TestSyncSkipsExpired: a record that expires before the index reads it is
// never delivered, and Sync must not wait for it.
func TestSyncSkipsExpired(t *testing.T) {
	db, dir := newStore(t)
	put(t, db, corpus[0])
	last := put(t, db, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "short lived", ExpiresAt: time.Now().Add(20 * time.Millisecond)})[0]
	time.Sleep(time.Until(last.ExpiresAt) + 10*time.Millisecond)
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
	defer x.Close()
	sync(t, x)
	if s := x.Stats(); s.Docs != 1 {
		t.Fatalf("Stats = %+v, want the one live record", s)
	}
}

// TestEndpointDown: while the embeddings endpoint fails, records stay
// searchable by BM25 and Mode says embeddings are pending.
func TestEndpointDown(t *testing.T) {
	srv := newServer(t, 16)
	for range 50 {
		srv.Script(embedtest.Fault{Status: 503, Body: "down"})
	}
	db, dir := newStore(t)
	x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "m1")})
	defer x.Close()
	put(t, db, corpus...)
	sync(t, x)
	if got := x.Mode(); !strings.Contains(got, "5 records waiting for embeddings") {
		t.Errorf("Mode = %q, want it to say 5 records wait", got)
	}
	if s := x.Stats(); !strings.Contains(s.LastError, "503") {
		t.Errorf("LastError = %q, want the endpoint's 503", s.LastError)
	}
	hits := search(t, x, recall.Query{Text: "obstacle aisle"})
	if len(hits) != 1 || hits[0].Record.Text != corpus[1].Text || hits[0].BM25Rank != 1 || hits[0].VectorRank != 0 {
		t.Errorf("hits %+v, want the obstacle record by BM25", hits)
	}
}

// The index holds canonical ULIDs as 16 bytes; an ID spelled otherwise (an
// import keeps a lower-case ULID as given) is returned as it was stored,
// also after a reopen.
func TestOddIDs(t *testing.T) {
	db, dir := newStore(t)
	cfg := recall.Config{Source: db, Dir: filepath.Join(dir, "recall")}
	x := openIndex(t, cfg)
	const odd = "01kgx3v4b2m5n6p7q8r9s0t1v2"
	line := `{"id":"` + odd + `","seq":1,"namespace":"shared","kind":"message","time":"2026-01-01T00:00:00Z","recorded":"2026-01-01T00:00:00Z","text":"lower case id battery"}` + "\n"
	if _, err := db.Import(context.Background(), strings.NewReader(line), memory.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	upper := put(t, db, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "upper case id battery"})[0]
	sync(t, x)
	check := func(when string) {
		t.Helper()
		ids := map[string]string{}
		for _, h := range search(t, x, recall.Query{Text: "battery"}) {
			ids[h.Record.Text] = h.Record.ID
		}
		if ids["lower case id battery"] != odd || ids["upper case id battery"] != upper.ID {
			t.Errorf("%s: recalled IDs %v, want %s and %s", when, ids, odd, upper.ID)
		}
	}
	check("indexed")
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = openIndex(t, cfg)
	defer x.Close()
	sync(t, x)
	check("reopened")
}

// TestFloor: with Query.Floor, a record that shares only a word nearly every
// record has ("ping" in every turn) is not recalled beside the ones that
// share the query's rare word, and a record the vector ranking finds stays.
func TestFloor(t *testing.T) {
	var recs []memory.Record
	for i := range 60 {
		recs = append(recs, memory.Record{Namespace: "agent/peer", Kind: memory.KindTurn, Text: fmt.Sprintf("ping %d final: echo ping %d", i%30, i%30)})
	}
	check := func(t *testing.T, x *recall.Index, vectors bool) {
		t.Helper()
		all := search(t, x, recall.Query{Text: "ping 7", K: 6})
		if len(all) != 6 {
			t.Fatalf("without a floor: hits %q, want 6 (every record has ping)", texts(all))
		}
		hits := search(t, x, recall.Query{Text: "ping 7", K: 6, Floor: 0.25})
		if !vectors && len(hits) != 2 {
			t.Fatalf("floor 0.25: hits %q, want the 2 records of ping 7", texts(hits))
		}
		for _, h := range hits {
			if h.Record.Text != "ping 7 final: echo ping 7" && h.BM25Rank != 0 {
				t.Errorf("floor 0.25: hit %+v ranked by BM25, want only ping 7 there (%q)", h, texts(hits))
			}
		}
		if vectors && len(hits) <= 2 {
			t.Errorf("floor 0.25: hits %q, want the vector ranking's records beside ping 7", texts(hits))
		}
	}
	t.Run("bm25", func(t *testing.T) {
		db, dir := newStore(t)
		put(t, db, recs...)
		x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
		defer x.Close()
		sync(t, x)
		check(t, x, false)
	})
	t.Run("hybrid", func(t *testing.T) {
		srv := newServer(t, 16)
		db, dir := newStore(t)
		put(t, db, recs...)
		x := openIndex(t, recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: newEmbedder(t, srv, "m1")})
		defer x.Close()
		sync(t, x)
		check(t, x, true)
	})
}

// gets counts the records recall reads from its Source.
type gets struct {
	recall.Source
	n atomic.Int64
}

func (g *gets) Get(ctx context.Context, id string) (memory.Record, error) {
	g.n.Add(1)
	return g.Source.Get(ctx, id)
}

// TestDistinct: with Query.Distinct, records that read alike (text, kind,
// namespace) count once, the newest, and the copies are not read from the
// store — also after a restart, from the saved index — so they crowd out
// neither other memories nor the turn's time.
func TestDistinct(t *testing.T) {
	db, dir := newStore(t)
	var recs []memory.Record
	for i := range 1200 { // past the 1,024 documents an index saves from
		text := fmt.Sprintf("ping %d final: echo ping %d", i%300, i%300) // ping 7's turn 4 times
		recs = append(recs, memory.Record{Namespace: "agent/peer", Kind: memory.KindTurn, Text: text})
	}
	recs = append(recs,
		memory.Record{Namespace: "agent/peer", Kind: memory.KindObservation, Text: "ping 7 final: echo ping 7"}, // another kind
		memory.Record{Namespace: "agent/other", Kind: memory.KindTurn, Text: "ping 7 final: echo ping 7"},       // another namespace
		memory.Record{Namespace: "agent/peer", Kind: memory.KindTurn, Text: "ping 7 timed out"})
	stored := put(t, db, recs...)
	g := &gets{Source: db}
	cfg := recall.Config{Source: g, Dir: filepath.Join(dir, "recall"), CheckpointEvery: 1000}
	check := func(t *testing.T, x *recall.Index) {
		t.Helper()
		g.n.Store(0)
		hits := search(t, x, recall.Query{Text: "ping 7", K: 4, Distinct: true})
		var got []string
		for _, h := range hits {
			got = append(got, fmt.Sprintf("%s %s %s", h.Record.Namespace, h.Record.Kind, h.Record.Text))
		}
		slices.Sort(got)
		want := []string{
			"agent/other turn ping 7 final: echo ping 7",
			"agent/peer observation ping 7 final: echo ping 7",
			"agent/peer turn ping 7 final: echo ping 7",
			"agent/peer turn ping 7 timed out",
		}
		if !slices.Equal(got, want) {
			t.Errorf("Distinct hits:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if n := g.n.Load(); n != 4 {
			t.Errorf("Distinct search read %d records from the store, want the 4 it returns", n)
		}
		if newest := stored[907]; !slices.ContainsFunc(hits, func(h recall.Hit) bool { return h.Record.ID == newest.ID }) {
			t.Errorf("the turn of ping 7 returned is not the newest of its copies (%s)", newest.ID)
		}
		if all := search(t, x, recall.Query{Text: "ping 7", K: 4}); len(all) != 4 || all[0].Record.Text != all[1].Record.Text {
			t.Errorf("without Distinct: hits %q, want the copies", texts(all))
		}
	}
	x := openIndex(t, cfg)
	sync(t, x)
	check(t, x)
	for deadline := time.Now().Add(20 * time.Second); x.Stats().Saved < 1000; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the first 1,000 documents: %+v", x.Stats())
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = openIndex(t, cfg)
	defer x.Close()
	sync(t, x)
	check(t, x) // ping 7's copies are among the documents read from the checkpoint
}
