// Package synth generates synthetic data for recall tests and benchmarks:
// clustered vectors (real embeddings cluster by topic; uniform random
// vectors do not, and make approximate search look easier than it is) and
// Zipf-distributed words (real text has a few very common words, whose
// postings lists are long).
package synth

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// BenchN is the corpus size of the recall benchmarks: DEPAI_BENCH_RECALL_N,
// default 1M.
func BenchN(tb testing.TB) int {
	s := os.Getenv("DEPAI_BENCH_RECALL_N")
	if s == "" {
		return 1000000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("DEPAI_BENCH_RECALL_N=%q: want a positive integer", s)
	}
	return n
}

// Words returns a source of words drawn from r over a vocabulary of 50k
// with Zipf's law (s 1.1).
func Words(r *rand.Rand) func() string {
	zipf := rand.NewZipf(r, 1.1, 2, 49999)
	return func() string { return "w" + strconv.FormatUint(zipf.Uint64(), 36) }
}

// Clustered returns n normalized vectors of dims float32 laid end to end,
// drawn around clusters random centres with per-coordinate noise spread.
// The same seed gives the same vectors.
func Clustered(n, dims, clusters int, spread float64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, seed+1))
	centres := make([]float32, clusters*dims)
	for i := range centres {
		centres[i] = float32(r.NormFloat64())
	}
	for c := 0; c < clusters; c++ {
		vecscan.Normalize(centres[c*dims : (c+1)*dims])
	}
	out := make([]float32, n*dims)
	for i := 0; i < n; i++ {
		c := r.IntN(clusters)
		v := out[i*dims : (i+1)*dims]
		for j := range v {
			v[j] = centres[c*dims+j] + float32(r.NormFloat64()*spread)
		}
		vecscan.Normalize(v)
	}
	return out
}
