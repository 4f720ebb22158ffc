package recall_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/recall"
	"github.com/depai/depai/memory/recall/internal/synth"
)

// queryEmbedder answers Search's query embedding from a table. The benchmark
// measures the index, not an embeddings endpoint, and its record vectors are
// clustered synthetic data that no real model would produce for the texts.
type queryEmbedder struct {
	dims int
	vecs map[string][]float32
}

func (e *queryEmbedder) Model() string { return "synthetic" }
func (e *queryEmbedder) Dims() int     { return e.dims }
func (e *queryEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v, ok := e.vecs[t]
		if !ok {
			return nil, fmt.Errorf("no scripted vector for %q", t)
		}
		out[i] = v
	}
	return out, nil
}

// BenchmarkIndex runs the whole index over the badger store: it writes
// DEPAI_BENCH_RECALL_N (default 1M) records of Zipf-distributed words with
// clustered synthetic 384-d vectors into one namespace, then reports the
// index's catch-up rate, the HNSW build time, reopen time, and hybrid Search
// p50/p99 (BM25 + vectors + RRF + fetching the 10 records from the store).
// Writing and building are excluded from the per-query figures.
func BenchmarkIndex(b *testing.B) {
	n := synth.BenchN(b)
	const dims = 384
	ctx := context.Background()
	dir := b.TempDir()
	db, err := memory.Open(ctx, memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(5, 6))
	word := synth.Words(r)
	vecs := synth.Clustered(n, dims, max(n/1000, 10), 0.05, 9)
	batch := make([]memory.Record, 0, 1000)
	for i := 0; i < n; i++ {
		var ws []string
		for range 8 + r.IntN(17) {
			ws = append(ws, word())
		}
		batch = append(batch, memory.Record{Namespace: "fleet/site-a", Kind: memory.KindObservation, Text: strings.Join(ws, " "),
			Embedding: &memory.Embedding{Model: "synthetic", Vector: vecs[i*dims : (i+1)*dims]}})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.Put(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	emb := &queryEmbedder{dims: dims, vecs: map[string][]float32{}}
	queries := make([]string, 500)
	for i := range queries {
		queries[i] = word() + " " + word()
		src := r.IntN(n)
		q := make([]float32, dims)
		for j := range q {
			q[j] = vecs[src*dims+j] + float32(r.NormFloat64()*0.02)
		}
		emb.vecs[queries[i]] = q
	}
	cfg := recall.Config{Source: db, Dir: filepath.Join(dir, "recall"), Embedder: emb}

	start := time.Now()
	x, err := recall.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := x.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	ingest := time.Since(start)
	waitGraph := func() {
		for n > 30000 && x.Stats().Graphs == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitGraph()
	built := time.Since(start)
	if err := x.Close(); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	x, err = recall.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := x.WaitLoaded(ctx); err != nil {
		b.Fatal(err)
	}
	opened := time.Since(start)
	waitGraph()
	rebuilt := time.Since(start)
	defer x.Close()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		hits, err := x.Search(ctx, recall.Query{Text: queries[i%len(queries)], K: 10})
		if err != nil || len(hits) == 0 {
			b.Fatalf("Search: %d hits, %v", len(hits), err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(n)/ingest.Seconds(), "ingest-rec/s")
	b.ReportMetric(built.Seconds(), "build-s")
	b.ReportMetric(float64(opened.Milliseconds()), "reopen-ms")
	b.ReportMetric(rebuilt.Seconds(), "reopen-graph-s")
	b.Logf("n=%d ingest=%s graph built at %s; reopen: open %s, graph rebuilt at %s; %+v", n, ingest, built, opened, rebuilt, x.Stats())
}

// BenchmarkSearchWithin is an agent's search: BM25 only, bounded by the
// agent's read grants (Query.Within), over 100k facts in 20 namespaces,
// each fact with its own key, so the index interns 100k strings besides
// the namespaces.
func BenchmarkSearchWithin(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	db, err := memory.Open(ctx, memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := make([]memory.Record, 0, 1000)
	for i := range 100000 {
		batch = append(batch, memory.Record{Namespace: fmt.Sprintf("agent/r%d", i%20), Kind: memory.KindFact,
			Key: fmt.Sprintf("k%d", i), Text: fmt.Sprintf("w%d w%d w%d", i%97, i%1013, i%7)})
		if len(batch) == cap(batch) {
			if _, err := db.Put(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	x, err := recall.Open(ctx, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	if err := x.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	q := recall.Query{Text: "w5 w17", Within: []string{"agent/r3", "agent/r4", "shared"}}
	for b.Loop() {
		if hits, err := x.Search(ctx, q); err != nil || len(hits) == 0 {
			b.Fatalf("Search: %d hits, %v", len(hits), err)
		}
	}
}

// BenchmarkRebuild measures, over a store of DEPAI_BENCH_REBUILD_N records
// (default 300k; text only, BM25): how long the index takes to rebuild
// from nothing (rebuild-s: Open, then Sync), and then, with the index
// saved, how long a restart waits for it: Open's return (open-µs, what
// depai's start waits for), the load (loaded-ms) and until Ready
// (ready-ms). Run it with -benchtime 1x.
func BenchmarkRebuild(b *testing.B) {
	n := 300_000
	if v, err := strconv.Atoi(os.Getenv("DEPAI_BENCH_REBUILD_N")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	dir := b.TempDir()
	db, err := memory.Open(ctx, memory.Config{Dir: filepath.Join(dir, "store"), GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(7, 8))
	word := synth.Words(r)
	batch := make([]memory.Record, 0, 1000)
	for i := range n {
		var ws []string
		for range 8 + r.IntN(17) {
			ws = append(ws, word())
		}
		batch = append(batch, memory.Record{Namespace: fmt.Sprintf("agent/r%d", i%10), Kind: memory.KindObservation, Text: strings.Join(ws, " ")})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.Put(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	cfg := recall.Config{Source: db, Dir: filepath.Join(dir, "recall")}
	var rebuild, open, loaded, ready time.Duration
	for b.Loop() {
		os.RemoveAll(cfg.Dir)
		start := time.Now()
		x, err := recall.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := x.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		rebuild += time.Since(start)
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		x, err = recall.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		open += time.Since(start)
		if err := x.WaitLoaded(ctx); err != nil {
			b.Fatal(err)
		}
		loaded += time.Since(start)
		for !x.Stats().Ready {
			time.Sleep(time.Millisecond)
		}
		ready += time.Since(start)
		if s := x.Stats(); s.Docs != n {
			b.Fatalf("reopened index holds %d documents, want %d", s.Docs, n)
		}
		x.Close()
	}
	per := func(d time.Duration) float64 { return float64(d) / float64(b.N) }
	b.ReportMetric(per(rebuild)/1e9, "rebuild-s")
	b.ReportMetric(per(open)/1e3, "open-µs")
	b.ReportMetric(per(loaded)/1e6, "loaded-ms")
	b.ReportMetric(per(ready)/1e6, "ready-ms")
}
