package hnsw

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/depai/depai/memory/recall/internal/synth"
	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// build inserts the vectors with workers goroutines (0: one by one with Add).
func build(vecs []float32, dims int, cfg Config, workers int) *Graph {
	vec := func(i uint32) []float32 { return vecs[int(i)*dims : (int(i)+1)*dims] }
	n := len(vecs) / dims
	if workers == 0 {
		g := New(cfg, vec)
		for g.Len() < n {
			g.Add(uint32(g.Len()))
		}
		return g
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	g, err := Build(context.Background(), cfg, vec, ids, workers)
	if err != nil {
		panic(err) // background context: cannot fail
	}
	return g
}

// recallAt returns the mean fraction of the exact top k that the graph finds.
func recallAt(g *Graph, vecs, queries []float32, dims, k, ef int, keep func(uint32) bool) float64 {
	var found, total int
	for q := 0; q < len(queries)/dims; q++ {
		qv := queries[q*dims : (q+1)*dims]
		exact := vecscan.Search(vecs, dims, qv, k, keep)
		want := make(map[uint32]bool, k)
		for _, r := range exact {
			want[r.ID] = true
		}
		for _, r := range g.Search(qv, k, ef, keep) {
			if want[r.ID] {
				found++
			}
		}
		total += len(exact)
	}
	return float64(found) / float64(total)
}

// TestRecallClustered checks recall@10 against an exact scan on 20k clustered
// synthetic 64-d vectors (3k under the race detector), built in parallel, and
// on a tenth of them built one by one.
func TestRecallClustered(t *testing.T) {
	n, dims := 20000, 64
	if raceEnabled {
		n = 3000
	}
	vecs := synth.Clustered(n, dims, 100, 0.08, 1)
	q := perturb(vecs, dims, 200, 0.3, 2)
	g := build(vecs, dims, Config{}, 4) // parallel: under -race this checks the node locking
	r := recallAt(g, vecs, q, dims, 10, 0, nil)
	t.Logf("recall@10 = %.4f", r)
	if r < 0.95 {
		t.Fatalf("recall@10 = %.3f, want >= 0.95", r)
	}
	sub := vecs[:n/10*dims]
	if r := recallAt(build(sub, dims, Config{}, 0), sub, q, dims, 10, 0, nil); r < 0.95 {
		t.Fatalf("sequential build: recall@10 = %.3f, want >= 0.95", r)
	}
	third := func(id uint32) bool { return id%3 == 0 }
	if r := recallAt(g, vecs, q[:50*dims], dims, 10, 0, third); r < 0.95 {
		t.Fatalf("filtered recall@10 = %.3f, want >= 0.95", r)
	}
}

// TestAddOrderAndSaveLoad adds vectors out of order, saves and loads the
// graph, keeps adding, and checks answers against an exact scan.
func TestAddOrderAndSaveLoad(t *testing.T) {
	const n, dims = 2000, 32
	vecs := synth.Clustered(n, dims, 20, 0.1, 3)
	vec := func(i uint32) []float32 { return vecs[int(i)*dims : (int(i)+1)*dims] }
	g := New(Config{}, vec)
	for i := n/2 - 1; i >= 0; i-- { // first half, backwards
		g.Add(uint32(i))
	}
	data, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	h, err := Load(Config{}, vec, data)
	if err != nil {
		t.Fatal(err)
	}
	for i := n / 2; i < n; i++ {
		h.Add(uint32(i))
	}
	q := perturb(vecs, dims, 100, 0.3, 4)
	if r := recallAt(h, vecs, q, dims, 10, 0, nil); r < 0.95 {
		t.Fatalf("recall@10 after load and more adds = %.3f", r)
	}
	for _, bad := range [][]byte{nil, data[:len(data)/2], append(append([]byte(nil), data...), 0)} {
		if _, err := Load(Config{}, vec, bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Load(%d bytes) err = %v, want ErrCorrupt", len(bad), err)
		}
	}
}

func FuzzLoad(f *testing.F) {
	vecs := synth.Clustered(50, 8, 3, 0.1, 3)
	vec := func(i uint32) []float32 { return vecs[int(i%50)*8 : int(i%50+1)*8] }
	g := New(Config{M: 4}, vec)
	for i := range 50 {
		g.Add(uint32(i))
	}
	data, _ := g.MarshalBinary()
	f.Add(data)
	f.Add([]byte{1, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Load(Config{M: 4}, vec, data)
		if err != nil {
			return
		}
		// A graph that loads must answer and take more vectors without panicking.
		h.Search(vecs[:8], 5, 0, nil)
		h.Add(7)
		h.Search(vecs[8:16], 5, 0, nil)
	})
}

func TestSmallAndEmpty(t *testing.T) {
	g := New(Config{}, func(uint32) []float32 { return nil })
	if got := g.Search([]float32{1}, 10, 0, nil); got != nil {
		t.Fatalf("empty graph: %v", got)
	}
	vecs := []float32{1, 0, 0, 1, 0.6, 0.8}
	g = build(vecs, 2, Config{}, 0)
	got := g.Search([]float32{1, 0}, 10, 0, nil)
	if len(got) != 3 || got[0].ID != 0 || got[1].ID != 2 || got[2].ID != 1 {
		t.Fatalf("Search = %+v, want ids 0, 2, 1", got)
	}
}

// BenchmarkSearch384 measures top-10 search over DEPAI_BENCH_RECALL_N
// (default 1M) clustered synthetic 384-d vectors. The build is done once and
// excluded; it reports p50/p99 latency, recall@10 against an exact scan, and
// the build time.
func BenchmarkSearch384(b *testing.B) {
	n := synth.BenchN(b)
	const dims, k = 384, 10
	clusters := max(n/1000, 10)
	vecs := synth.Clustered(n, dims, clusters, 0.05, 7)
	queries := perturb(vecs, dims, 1000, 0.3, 8)
	cfg := Config{M: envInt(b, "DEPAI_BENCH_HNSW_M"), EfConstruction: envInt(b, "DEPAI_BENCH_HNSW_EFC")}
	start := time.Now()
	workers := runtime.GOMAXPROCS(0)
	g := build(vecs, dims, cfg, workers)
	buildTime := time.Since(start)
	rec := recallAt(g, vecs, queries[:100*dims], dims, k, 0, nil)
	lat := make([]time.Duration, 0, b.N)
	nq := len(queries) / dims
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		q := queries[(i%nq)*dims : (i%nq+1)*dims]
		t0 := time.Now()
		g.Search(q, k, 0, nil)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(rec, "recall@10")
	b.ReportMetric(buildTime.Seconds(), "build-s")
	b.Logf("n=%d dims=%d clusters=%d M=%d efConstruction=%d build=%s (%d workers) recall@10=%.4f", n, dims, clusters, g.cfg.M, g.cfg.EfConstruction, buildTime, workers, rec)
	// The recall/latency trade-off, for choosing EfSearch.
	for _, ef := range []int{64, 100, 160, 256} {
		var l []time.Duration
		for i := 0; i < nq; i++ {
			t0 := time.Now()
			g.Search(queries[i*dims:(i+1)*dims], k, ef, nil)
			l = append(l, time.Since(t0))
		}
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		b.Logf("ef=%d recall@10=%.4f p50=%s p99=%s", ef, recallAt(g, vecs, queries[:100*dims], dims, k, ef, nil), l[len(l)/2], l[len(l)*99/100])
	}
}

// BenchmarkSearch10k is a quick, deterministic search benchmark: top 10 of
// 10k clustered 64-d vectors, the graph built one by one outside the timing.
func BenchmarkSearch10k(b *testing.B) {
	const n, dims = 10000, 64
	vecs := synth.Clustered(n, dims, 100, 0.08, 1)
	g := build(vecs, dims, Config{}, 0)
	queries := perturb(vecs, dims, 200, 0.3, 2)
	for i := 0; b.Loop(); i++ {
		g.Search(queries[(i%200)*dims:(i%200+1)*dims], 10, 0, nil)
	}
}

// envInt reads an optional tuning knob; unset is 0 (the default).
func envInt(b *testing.B, name string) int {
	s := os.Getenv(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, s)
	}
	return n
}

// perturb returns m vectors near randomly chosen rows of vecs.
func perturb(vecs []float32, dims, m int, noise float64, seed uint64) []float32 {
	n := len(vecs) / dims
	noiseV := synth.Clustered(m, dims, 1, 1, seed) // unit-norm random directions
	out := make([]float32, m*dims)
	for i := 0; i < m; i++ {
		src := (i * 7919) % n
		v := out[i*dims : (i+1)*dims]
		for j := range v {
			v[j] = vecs[src*dims+j] + float32(noise)*noiseV[i*dims+j]
		}
		vecscan.Normalize(v)
	}
	return out
}

func ExampleNew() {
	vecs := []float32{1, 0, 0, 1}
	g := New(Config{M: 8}, func(i uint32) []float32 { return vecs[i*2 : i*2+2] })
	g.Add(0)
	g.Add(1)
	fmt.Println(g.Search([]float32{0, 1}, 1, 0, nil)[0].ID)
	// Output: 1
}
