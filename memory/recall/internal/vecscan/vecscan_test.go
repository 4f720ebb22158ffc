package vecscan

import (
	"math/rand/v2"
	"sort"
	"testing"
)

func TestDot(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 64, 385} {
		a, b := make([]float32, n), make([]float32, n)
		var want float64
		for i := range a {
			a[i], b[i] = float32(i%5)-2, float32(i%3)+0.5
			want += float64(a[i]) * float64(b[i])
		}
		if got := Dot(a, b); float64(got) != want {
			t.Errorf("n=%d: Dot = %v, want %v", n, got, want)
		}
		if got := dotGo(a, b); float64(got) != want {
			t.Errorf("n=%d: dotGo = %v, want %v", n, got, want)
		}
	}
}

func TestSearchMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, d, k = 500, 16, 10
	vecs := make([]float32, n*d)
	for i := range vecs {
		vecs[i] = float32(r.NormFloat64())
	}
	for i := 0; i < n; i++ {
		Normalize(vecs[i*d : (i+1)*d])
	}
	q := vecs[3*d : 4*d]
	even := func(id uint32) bool { return id%2 == 0 }
	got := Search(vecs, d, q, k, even)
	var all []Result
	for i := 0; i < n; i += 2 {
		all = append(all, Result{uint32(i), Dot(q, vecs[i*d:(i+1)*d])})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Score > all[j].Score })
	if len(got) != k {
		t.Fatalf("got %d results, want %d", len(got), k)
	}
	for i := range got {
		if got[i] != all[i] {
			t.Fatalf("result %d = %+v, want %+v", i, got[i], all[i])
		}
	}
}

func TestNormalize(t *testing.T) {
	v := []float32{3, 4}
	if !Normalize(v) || v[0] != 0.6 || v[1] != 0.8 {
		t.Errorf("Normalize({3,4}) = %v", v)
	}
	if Normalize([]float32{0, 0}) {
		t.Error("Normalize(zero) = true")
	}
}

// BenchmarkDot384 compares the assembly dot product (when the CPU has AVX2
// and FMA) with the portable Go one.
func BenchmarkDot384(b *testing.B) {
	x, y := make([]float32, 384), make([]float32, 384)
	for i := range x {
		x[i], y[i] = float32(i), float32(384-i)
	}
	var s float32
	b.Run("Dot", func(b *testing.B) {
		b.Logf("assembly: %v", useAVX2)
		for b.Loop() {
			s += Dot(x, y)
		}
	})
	b.Run("Go", func(b *testing.B) {
		for b.Loop() {
			s += dotGo(x, y)
		}
	})
	_ = s
}

// BenchmarkScan30k is the exact scan recall uses below 30k vectors per
// namespace: top 10 of 30000 384-d vectors.
func BenchmarkScan30k(b *testing.B) {
	const n, d = 30000, 384
	r := rand.New(rand.NewPCG(1, 2))
	vecs := make([]float32, n*d)
	for i := range vecs {
		vecs[i] = float32(r.NormFloat64())
	}
	q := vecs[:d]
	for b.Loop() {
		Search(vecs, d, q, 10, nil)
	}
}

// BenchmarkTopK pushes 100k scores that drift upward, so that most pushes
// replace the heap's minimum: the sift-down path bm25 and recall lean on.
func BenchmarkTopK(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	scores := make([]float32, 100000)
	for i := range scores {
		scores[i] = r.Float32() + float32(i)*1e-6
	}
	for b.Loop() {
		t := NewTopK(40)
		for i, s := range scores {
			t.Push(uint32(i), s)
		}
		t.Sorted()
	}
}

// Of equal scores the higher IDs are kept and come first, whatever the
// order they were pushed in.
func TestTopKTiesKeepHigherIDs(t *testing.T) {
	for _, order := range [][]uint32{{1, 2, 3, 4, 5, 6}, {6, 5, 4, 3, 2, 1}, {3, 6, 1, 5, 2, 4}} {
		top := NewTopK(3)
		for _, id := range order {
			score := float32(1)
			if id == 1 {
				score = 2
			}
			top.Push(id, score)
		}
		got := top.Sorted()
		if len(got) != 3 || got[0].ID != 1 || got[1].ID != 6 || got[2].ID != 5 {
			t.Errorf("pushed %v: kept %+v, want 1 (best), then 6 and 5 of the ties", order, got)
		}
	}
}
