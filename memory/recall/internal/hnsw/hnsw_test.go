package hnsw

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
// graph, keeps adding, and checks answers against an exact scan; a damaged
// snapshot is ErrCorrupt.
func TestAddOrderAndSaveLoad(t *testing.T) {
	const n, dims = 2000, 32
	vecs := synth.Clustered(n, dims, 20, 0.1, 3)
	vec := func(i uint32) []float32 { return vecs[int(i)*dims : (int(i)+1)*dims] }
	g := New(Config{}, vec)
	for i := n/2 - 1; i >= 0; i-- { // first half, backwards
		g.Add(uint32(i))
	}
	var snap bytes.Buffer
	if err := g.Save(&snap, nil); err != nil {
		t.Fatal(err)
	}
	data := snap.Bytes()
	h, st, err := Load(Config{}, vec, bytes.NewReader(data), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st != (Restored{Snapshot: n / 2}) || h.Len() != n/2 {
		t.Fatalf("Load: %+v, %d nodes; want %d from the snapshot", st, h.Len(), n/2)
	}
	for i := n / 2; i < n; i++ {
		h.Add(uint32(i))
	}
	q := perturb(vecs, dims, 100, 0.3, 4)
	if r := recallAt(h, vecs, q, dims, 10, 0, nil); r < 0.95 {
		t.Fatalf("recall@10 after load and more adds = %.3f", r)
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x10
	for name, bad := range map[string][]byte{"empty": {}, "half": data[:len(data)/2], "trailing byte": append(bytes.Clone(data), 0), "bit flip": flipped} {
		if _, _, err := Load(Config{}, vec, bytes.NewReader(bad), nil, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Load(%s) err = %v, want ErrCorrupt", name, err)
		}
	}
	if _, _, err := Load(Config{M: 8}, vec, bytes.NewReader(data), nil, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load with another M: err = %v, want ErrCorrupt", err)
	}
}

// TestLogReplay builds a graph in parallel with a log, saves a snapshot
// halfway through later additions, and restores from the snapshot and the
// log: whole, cut at every kind of place, and with nodes remap refuses.
func TestLogReplay(t *testing.T) {
	n, dims := 6000, 32
	if raceEnabled {
		n = 1500
	}
	vecs := synth.Clustered(n, dims, 30, 0.1, 5)
	vec := func(i uint32) []float32 { return vecs[int(i)*dims : (int(i)+1)*dims] }
	q := perturb(vecs, dims, 100, 0.3, 6)
	ids := make([]uint32, n/2)
	for i := range ids {
		ids[i] = uint32(i)
	}
	// Logged IDs are the caller's plus 1000, as recall logs record numbers
	// instead of positions.
	var log bytes.Buffer
	g, err := Build(context.Background(), Config{Log: &log, LogID: func(x uint32) uint32 { return x + 1000 }}, vec, ids, 2)
	if err != nil {
		t.Fatal(err)
	}
	unmap := func(x uint32) (uint32, bool) { return x - 1000, x >= 1000 }
	// The log alone restores the parallel build.
	h, st, err := Load(Config{}, vec, nil, bytes.NewReader(log.Bytes()), unmap)
	if err != nil || st != (Restored{Logged: n / 2}) || h.Len() != n/2 {
		t.Fatalf("Load(log of Build) = %+v, %d nodes, %v; want %d logged", st, h.Len(), err, n/2)
	}
	sub := vecs[:n/2*dims]
	if r := recallAt(h, sub, q, dims, 10, 0, nil); r < 0.95 {
		t.Fatalf("recall@10 from the log of a parallel build = %.3f", r)
	}
	var snap bytes.Buffer
	if err := g.Save(&snap, func(x uint32) uint32 { return x + 1000 }); err != nil {
		t.Fatal(err)
	}
	// As after a crash between renaming a new snapshot and truncating the
	// log: the records it holds are skipped.
	for i := n / 2; i < n; i++ {
		g.Add(uint32(i))
	}
	if err := g.LogErr(); err != nil {
		t.Fatal(err)
	}
	whole := log.Bytes()
	h, st, err = Load(Config{}, vec, bytes.NewReader(snap.Bytes()), bytes.NewReader(whole), unmap)
	if err != nil || st != (Restored{Snapshot: n / 2, Logged: n - n/2}) {
		t.Fatalf("Load(snapshot, log) = %+v, %v", st, err)
	}
	if r := recallAt(h, vecs, q, dims, 10, 0, nil); r < 0.95 {
		t.Fatalf("recall@10 from snapshot and log = %.3f", r)
	}
	// Cut mid-record (a crash while writing) or damaged: the records before
	// the damage load, the rest are missing for the caller to add again.
	flipped := bytes.Clone(whole)
	flipped[len(whole)*3/4] ^= 1
	for name, l := range map[string][]byte{"cut": whole[:len(whole)*3/4+5], "bit flip": flipped, "garbage": append(bytes.Clone(whole), 7, 7, 7, 7, 7, 7, 7, 7, 7)} {
		h, st, err := Load(Config{}, vec, bytes.NewReader(snap.Bytes()), bytes.NewReader(l), unmap)
		if err != nil || !st.LogDamaged || h.Len() != st.Snapshot+st.Logged || st.Logged == 0 {
			t.Fatalf("%s log: %+v, %d nodes, %v", name, st, h.Len(), err)
		}
		have := make(map[uint32]bool)
		for i := range h.Len() {
			have[h.ext[i]] = true
		}
		for i := range n {
			if !have[uint32(i)] {
				h.Add(uint32(i))
			}
		}
		if r := recallAt(h, vecs, q, dims, 10, 0, nil); r < 0.95 {
			t.Fatalf("%s log: recall@10 after adding the rest = %.3f", name, r)
		}
	}
	// A gap: the old snapshot with a log that starts past its end (a crash
	// between a new log's rename and its snapshot's). The nodes between
	// are missing, the rest load.
	var gapped []byte
	for _, r := range unframe(whole) {
		if id, _ := binary.Uvarint(r); id < uint64(n/2) || id >= uint64(n/2+300) {
			gapped = appendFrame(gapped, r)
		}
	}
	h, st, err = Load(Config{}, vec, bytes.NewReader(snap.Bytes()), bytes.NewReader(gapped), unmap)
	if err != nil || st.Dropped != 300 || st.Logged != n-n/2-300 || st.LogDamaged {
		t.Fatalf("Load(snapshot, log with a gap) = %+v, %v", st, err)
	}
	for i := n / 2; i < n/2+300; i++ {
		h.Add(uint32(i))
	}
	if r := recallAt(h, vecs, q, dims, 10, 0, nil); r < 0.95 {
		t.Fatalf("log with a gap: recall@10 after adding the rest = %.3f", r)
	}
	// Nodes remap refuses are left out and never returned.
	even := func(x uint32) (uint32, bool) { return x - 1000, x%2 == 0 }
	h, st, err = Load(Config{}, vec, bytes.NewReader(snap.Bytes()), bytes.NewReader(whole), even)
	if err != nil || st.Dropped != n/2 || h.Len() != n-n/2 {
		t.Fatalf("Load(even IDs) = %+v, %d nodes, %v", st, h.Len(), err)
	}
	evenKeep := func(id uint32) bool { return id%2 == 0 }
	for qi := range 20 {
		for _, r := range h.Search(q[qi*dims:(qi+1)*dims], 10, 0, nil) {
			if r.ID%2 != 0 {
				t.Fatalf("dropped node %d returned", r.ID)
			}
		}
	}
	if r := recallAt(h, vecs, q, dims, 10, 0, evenKeep); r < 0.9 {
		t.Fatalf("recall@10 of the even half = %.3f", r)
	}
}

// TestLogFarAhead: a log record whose node number is far past the others
// (damage that kept a valid checksum) ends the replay instead of making
// Load allocate room for the nodes between.
func TestLogFarAhead(t *testing.T) {
	vecs := synth.Clustered(20, 8, 2, 0.1, 3)
	vec := func(i uint32) []float32 { return vecs[int(i%20)*8 : int(i%20+1)*8] }
	var log bytes.Buffer
	g := New(Config{M: 4, Log: &log}, vec)
	for i := range 20 {
		g.Add(uint32(i))
	}
	recs := unframe(log.Bytes())
	last := recs[len(recs)-1]
	_, k := binary.Uvarint(last)
	far := append(binary.AppendUvarint(nil, 1<<30), last[k:]...)
	var bad []byte
	for _, r := range recs[:10] {
		bad = appendFrame(bad, r)
	}
	bad = appendFrame(bad, far)
	h, st, err := Load(Config{M: 4}, vec, nil, bytes.NewReader(bad), nil)
	if err != nil || !st.LogDamaged || st.Logged != 10 || h.Len() != 10 {
		t.Fatalf("Load = %+v, %v, %d nodes; want the 10 records before the damage", st, err, h.Len())
	}
}

func TestDot8(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 63, 64, 65, 384, 1000} {
		a, b := make([]int8, n), make([]int8, n)
		var want int32
		for i := range a {
			a[i], b[i] = int8(i*37%255-127), int8(i*91%255-127)
			want += int32(a[i]) * int32(b[i])
		}
		if got := dot8(a, b); got != want {
			t.Errorf("dot8 of %d = %d, want %d", n, got, want)
		}
		if got := dot8Go(a, b); got != want {
			t.Errorf("dot8Go of %d = %d, want %d", n, got, want)
		}
	}
	v := synth.Clustered(1, 384, 1, 1, 9)
	w := synth.Clustered(1, 384, 1, 1, 10)
	cv, cw := make([]int8, 384), make([]int8, 384)
	sv, sw := quantize(cv, v), quantize(cw, w)
	if got, want := sv*sw*float32(dot8(cv, cw)), vecscan.Dot(v, w); math.Abs(float64(got-want)) > 0.01 {
		t.Errorf("quantized dot %.4f, exact %.4f", got, want)
	}
}

// FuzzLoad feeds Load snapshot and log payloads in valid frames, so the
// decoders behind the checksums are what it explores. The log's records
// are given as uvarint-length-prefixed payloads.
func FuzzLoad(f *testing.F) {
	vecs := synth.Clustered(50, 8, 3, 0.1, 3)
	vec := func(i uint32) []float32 { return vecs[int(i%50)*8 : int(i%50+1)*8] }
	var log bytes.Buffer
	g := New(Config{M: 4, Log: &log}, vec)
	for i := range 30 {
		g.Add(uint32(i))
	}
	var snap bytes.Buffer
	if err := g.Save(&snap, nil); err != nil {
		f.Fatal(err)
	}
	for i := 30; i < 50; i++ {
		g.Add(uint32(i))
	}
	snapP := bytes.Join(unframe(snap.Bytes()), nil)
	var logP []byte
	for _, r := range unframe(log.Bytes()) {
		logP = append(binary.AppendUvarint(logP, uint64(len(r))), r...)
	}
	f.Add(snapP, logP)
	f.Add([]byte{}, logP[:len(logP)/2])
	f.Add(snapP[:20], []byte{5, 1, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, snapP, logP []byte) {
		var snap io.Reader
		if len(snapP) > 0 {
			snap = bytes.NewReader(appendFrame(nil, snapP))
		}
		var log []byte
		for len(logP) > 0 {
			n, k := binary.Uvarint(logP)
			if k <= 0 || n > uint64(len(logP)-k) {
				break
			}
			log = appendFrame(log, logP[k:k+int(n)])
			logP = logP[k+int(n):]
		}
		h, _, err := Load(Config{M: 4}, vec, snap, bytes.NewReader(log), nil)
		if err != nil {
			return
		}
		// A graph that loads must answer and take more vectors without panicking.
		h.Search(vecs[:8], 5, 0, nil)
		h.Add(7)
		h.Search(vecs[8:16], 5, 0, nil)
	})
}

// unframe returns the payloads of b's frames.
func unframe(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 8 {
		n := binary.LittleEndian.Uint32(b)
		out = append(out, b[8:8+n])
		b = b[8+n:]
	}
	return out
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
// (default 1M) clustered synthetic 384-d vectors. The graph is built once
// per size and setting and cached as a snapshot under
// ~/.cache/depai/bench, with its build time beside it; later runs load it.
// It reports p50/p99 latency, recall@10 against an exact scan, the build
// and load times, and the graph's bytes per vector.
func BenchmarkSearch384(b *testing.B) {
	n := synth.BenchN(b)
	const dims, k = 384, 10
	clusters := max(n/1000, 10)
	vecs := synth.Clustered(n, dims, clusters, 0.05, 7)
	queries := perturb(vecs, dims, 1000, 0.3, 8)
	cfg := Config{M: envInt(b, "DEPAI_BENCH_HNSW_M"), EfConstruction: envInt(b, "DEPAI_BENCH_HNSW_EFC")}
	g, buildTime, buildCPU, loadTime := cachedGraph(b, cfg, vecs, dims, clusters)
	nq := len(queries) / dims
	truth := exactTopK(vecs, queries[:300*dims], dims, k)
	rec := recallOf(g, queries, dims, k, 0, truth[:100])
	lat := make([]time.Duration, 0, b.N)
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
	b.ReportMetric(buildCPU.Seconds(), "build-cpu-s")
	b.ReportMetric(float64(g.BytesPerVector()), "graph-B/vec")
	b.Logf("n=%d dims=%d clusters=%d M=%d efConstruction=%d efSearch=%d build=%s wall, %s CPU (GOMAXPROCS %d) load=%s recall@10=%.4f graph=%d B/vector (+%d B float32 held by the caller)",
		n, dims, clusters, g.cfg.M, g.cfg.EfConstruction, g.cfg.EfSearch, buildTime, buildCPU, runtime.GOMAXPROCS(0), loadTime, rec, g.BytesPerVector(), 4*dims)
	// The recall/latency trade-off, for choosing EfSearch.
	for _, ef := range []int{32, 48, 64, 100, 160} {
		var l []time.Duration
		for i := 0; i < nq; i++ {
			t0 := time.Now()
			g.Search(queries[i*dims:(i+1)*dims], k, ef, nil)
			l = append(l, time.Since(t0))
		}
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		b.Logf("ef=%d recall@10=%.4f p50=%s p99=%s", ef, recallOf(g, queries, dims, k, ef, truth), l[len(l)/2], l[len(l)*99/100])
	}
}

// exactTopK returns the exact top k IDs of each query.
func exactTopK(vecs, queries []float32, dims, k int) []map[uint32]bool {
	out := make([]map[uint32]bool, len(queries)/dims)
	var wg sync.WaitGroup
	for q := range out {
		wg.Go(func() {
			want := make(map[uint32]bool, k)
			for _, r := range vecscan.Search(vecs, dims, queries[q*dims:(q+1)*dims], k, nil) {
				want[r.ID] = true
			}
			out[q] = want
		})
		if q%runtime.GOMAXPROCS(0) == 0 {
			wg.Wait()
		}
	}
	wg.Wait()
	return out
}

// recallOf is recall@k of the graph for the first len(truth) queries.
func recallOf(g *Graph, queries []float32, dims, k, ef int, truth []map[uint32]bool) float64 {
	var found, total int
	for q, want := range truth {
		for _, r := range g.Search(queries[q*dims:(q+1)*dims], k, ef, nil) {
			if want[r.ID] {
				found++
			}
		}
		total += len(want)
	}
	return float64(found) / float64(total)
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBuildVersion names the construction algorithm in cached graphs'
// file names, so a change to how graphs are built is measured afresh.
// v2: back-link pruning without filling up.
const benchBuildVersion = "v2"

// cachedGraph loads the benchmark's graph from the cache, or builds it
// with GOMAXPROCS workers and caches it, and returns it with the time its
// build took and the time this load took (0 when built).
func cachedGraph(b *testing.B, cfg Config, vecs []float32, dims, clusters int) (g *Graph, build, buildCPU, load time.Duration) {
	n := len(vecs) / dims
	vec := func(i uint32) []float32 { return vecs[int(i)*dims : (int(i)+1)*dims] }
	home, err := os.UserHomeDir()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(home, ".cache", "depai", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	g0 := New(cfg, nil)
	path := filepath.Join(dir, fmt.Sprintf("hnsw-%s-%s-n%d-d%d-c%d-M%d-efc%d", snapMagic, benchBuildVersion, n, dims, clusters, g0.cfg.M, g0.cfg.EfConstruction))
	if f, err := os.Open(path + ".snap"); err == nil {
		defer f.Close()
		t0 := time.Now()
		g, _, err := Load(cfg, vec, f, nil, nil)
		if err == nil {
			load := time.Since(t0)
			bt, _ := os.ReadFile(path + ".build")
			var wall, cpu time.Duration
			if f := strings.Fields(string(bt)); len(f) == 2 {
				wall, _ = time.ParseDuration(f[0])
				cpu, _ = time.ParseDuration(f[1])
			}
			return g, wall, cpu, load
		}
		b.Logf("cached graph %s: %v; rebuilding", path, err)
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	t0, c0 := time.Now(), cpuTime()
	g, err = Build(context.Background(), cfg, vec, ids, runtime.GOMAXPROCS(0))
	if err != nil {
		b.Fatal(err)
	}
	d, cpu := time.Since(t0), cpuTime()-c0
	f, err := os.Create(path + ".snap.tmp")
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Save(f, nil); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(path+".snap.tmp", path+".snap"); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path+".build", []byte(d.String()+" "+cpu.String()+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return g, d, cpu, 0
}

// BenchmarkRestore compares what a restart costs against a rebuild, in
// CPU time (load-independent, unlike wall time on a shared machine), over
// DEPAI_BENCH_RESTORE_N (default 20k) clustered synthetic 384-d vectors:
// loading a snapshot, and replaying a log of every insertion (a crash
// right after a build, before its first snapshot: the worst case).
func BenchmarkRestore(b *testing.B) {
	n := 20000
	if s := os.Getenv("DEPAI_BENCH_RESTORE_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	const dims = 384
	vecs := synth.Clustered(n, dims, max(n/1000, 10), 0.05, 7)
	vec := func(i uint32) []float32 { return vecs[int(i)*dims : (int(i)+1)*dims] }
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	var log, snap bytes.Buffer
	c0 := cpuTime()
	g, err := Build(context.Background(), Config{Log: &log}, vec, ids, runtime.GOMAXPROCS(0))
	if err != nil {
		b.Fatal(err)
	}
	build := cpuTime() - c0
	if err := g.Save(&snap, nil); err != nil {
		b.Fatal(err)
	}
	var fromSnap, fromLog time.Duration
	for b.Loop() {
		c0 = cpuTime()
		if _, _, err := Load(Config{}, vec, bytes.NewReader(snap.Bytes()), nil, nil); err != nil {
			b.Fatal(err)
		}
		c1 := cpuTime()
		if _, _, err := Load(Config{}, vec, nil, bytes.NewReader(log.Bytes()), nil); err != nil {
			b.Fatal(err)
		}
		fromSnap, fromLog = fromSnap+c1-c0, fromLog+cpuTime()-c1
	}
	runs := time.Duration(b.N)
	b.ReportMetric(build.Seconds(), "build-cpu-s")
	b.ReportMetric((fromSnap / runs).Seconds(), "snapshot-cpu-s")
	b.ReportMetric((fromLog / runs).Seconds(), "log-replay-cpu-s")
	b.ReportMetric(float64(snap.Len())/float64(n), "snapshot-B/vec")
	b.ReportMetric(float64(log.Len())/float64(n), "log-B/vec")
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
