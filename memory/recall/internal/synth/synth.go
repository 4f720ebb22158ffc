// Package synth generates clustered synthetic vectors for recall tests and
// benchmarks. Real embeddings cluster by topic; uniform random vectors do
// not, and make approximate search look easier than it is.
package synth

import (
	"math/rand/v2"

	"github.com/depai/depai/memory/recall/internal/vecscan"
)

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
