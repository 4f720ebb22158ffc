// Package vecscan is exact vector search: a dot product written so the
// compiler keeps four independent accumulators in registers, and a top-k scan
// over a flat slice of normalized vectors. Below a few tens of thousands of
// vectors an exact scan is as fast as a graph and always exact.
package vecscan

import "math"

// Dot returns the dot product of a and b, which must have equal lengths.
// On amd64 with AVX2 and FMA it runs in assembly; elsewhere in Go.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	if useAVX2 && len(a) > 0 {
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dotGo(a, b)
}

func dotGo(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		aa, bb := a[i:i+8:i+8], b[i:i+8:i+8]
		s0 += aa[0]*bb[0] + aa[4]*bb[4]
		s1 += aa[1]*bb[1] + aa[5]*bb[5]
		s2 += aa[2]*bb[2] + aa[6]*bb[6]
		s3 += aa[3]*bb[3] + aa[7]*bb[7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// Normalize scales v to unit length in place, so that a dot product is the
// cosine similarity. It reports false for a zero or non-finite vector.
func Normalize(v []float32) bool {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return false
	}
	inv := float32(1 / math.Sqrt(n))
	for i := range v {
		v[i] *= inv
	}
	return true
}

// Result is one match: the position of a vector and its similarity to the query.
type Result struct {
	ID    uint32
	Score float32
}

// TopK keeps the k results with the highest scores; of equal scores, the
// higher IDs, which in recall are the newer records (as rrf breaks ties):
// the newest of equally good memories are the likelier to matter, and the
// likelier to be in the store's RAM ring.
type TopK struct {
	k int
	h []Result // min-heap on worse
}

// worse orders results: a lower score, or the same score and a lower ID.
func worse(a, b Result) bool { return a.Score < b.Score || a.Score == b.Score && a.ID < b.ID }

// NewTopK returns an empty TopK of capacity k.
func NewTopK(k int) *TopK { return &TopK{k: k, h: make([]Result, 0, k)} }

// Push offers a result.
func (t *TopK) Push(id uint32, score float32) {
	if len(t.h) < t.k {
		t.h = append(t.h, Result{id, score})
		for i := len(t.h) - 1; i > 0; {
			p := (i - 1) / 2
			if !worse(t.h[i], t.h[p]) {
				break
			}
			t.h[p], t.h[i] = t.h[i], t.h[p]
			i = p
		}
		return
	}
	r := Result{id, score}
	if t.k == 0 || !worse(t.h[0], r) {
		return
	}
	t.h[0] = r
	t.down()
}

// down restores the heap order after t.h[0] changed.
func (t *TopK) down() {
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(t.h) && worse(t.h[l], t.h[m]) {
			m = l
		}
		if r := l + 1; r < len(t.h) && worse(t.h[r], t.h[m]) {
			m = r
		}
		if m == i {
			break
		}
		t.h[m], t.h[i] = t.h[i], t.h[m]
		i = m
	}
}

// Worst is the kept result that the next one pushed would displace first
// (the lowest score; of equal scores, the lowest ID).
func (t *TopK) Worst() (Result, bool) {
	if len(t.h) == 0 {
		return Result{}, false
	}
	return t.h[0], true
}

// Sorted returns the kept results, best first; the TopK is empty afterwards.
func (t *TopK) Sorted() []Result {
	out := make([]Result, len(t.h))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = t.h[0]
		last := len(t.h) - 1
		t.h[0] = t.h[last]
		t.h = t.h[:last]
		t.down()
	}
	return out
}

// Search scans vecs, n vectors of dims float32 laid end to end, and returns
// the k most similar to q, best first. keep, when not nil, excludes positions.
func Search(vecs []float32, dims int, q []float32, k int, keep func(uint32) bool) []Result {
	top := NewTopK(k)
	n := len(vecs) / dims
	for i := 0; i < n; i++ {
		if keep != nil && !keep(uint32(i)) {
			continue
		}
		top.Push(uint32(i), Dot(q, vecs[i*dims:(i+1)*dims]))
	}
	return top.Sorted()
}
