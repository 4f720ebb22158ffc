package bm25

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/memory/recall/internal/synth"
)

// BenchmarkSearch1M measures BM25 queries of two or three words over
// DEPAI_BENCH_RECALL_N (default 1M) synthetic documents of 8–24 words drawn
// from a Zipf-distributed vocabulary of 50k words, so common words have long
// postings lists as in real text. Building is excluded; p50/p99 reported.
func BenchmarkSearch1M(b *testing.B) {
	n := synth.BenchN(b)
	r := rand.New(rand.NewPCG(1, 1))
	word := synth.Words(r)
	x := New()
	start := time.Now()
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.Reset()
		for range 8 + r.IntN(17) {
			sb.WriteString(word())
			sb.WriteByte(' ')
		}
		if err := x.Add(uint32(i), sb.String()); err != nil {
			b.Fatal(err)
		}
	}
	build := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := ms.HeapAlloc
	queries := make([]Query, 1000)
	for i := range queries {
		var words []string
		for range 2 + r.IntN(2) {
			words = append(words, word())
		}
		queries[i] = ParseQuery(strings.Join(words, " "))
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		x.Search(queries[i%len(queries)], 10, nil)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(build.Seconds(), "build-s")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB") // the index and the vocabulary's strings
	b.Log(fmt.Sprintf("n=%d terms=%d build=%s", n, x.dict.len(), build))
}
