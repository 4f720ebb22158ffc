// Package rrf fuses ranked lists by reciprocal rank fusion (Cormack, Clarke
// and Büttcher, 2009): an item scores the sum of 1/(K + rank) over the lists
// it appears in. Ranks, not raw scores, are combined, so BM25 scores and
// cosine similarities need no common scale.
package rrf

import (
	"cmp"
	"slices"
)

// K is the rank constant; 60 is the value of the original paper.
const K = 60

// Fused is one item of the fused list. Ranks[i] is its 1-based rank in list
// i, 0 when it is not in that list.
type Fused struct {
	ID    uint32
	Score float64
	Ranks []int
}

// Fuse merges lists of item IDs, each best first, and returns every item
// once, best first. Ties are broken by the higher ID, which in recall is
// the newer record.
//
// It runs on every search, so it allocates a fixed handful of times
// whatever the lists' length: the items, their ranks (one array they all
// share) and the index of IDs seen.
func Fuse(lists ...[]uint32) []Fused {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	at := make(map[uint32]int, n)
	out := make([]Fused, 0, n)
	ranks := make([]int, n*len(lists))
	for li, l := range lists {
		for r, id := range l {
			i, ok := at[id]
			if !ok {
				i = len(out)
				at[id] = i
				out = append(out, Fused{ID: id, Ranks: ranks[i*len(lists) : (i+1)*len(lists) : (i+1)*len(lists)]})
			}
			if out[i].Ranks[li] == 0 { // a repeated ID keeps its best rank
				out[i].Ranks[li] = r + 1
				out[i].Score += 1 / float64(K+r+1)
			}
		}
	}
	slices.SortFunc(out, func(a, b Fused) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out
}

// Single is Fuse of one list among n (the others empty), without the merge:
// the list's own order, its ranks in place 0 of each item's n ranks.
func Single(list []uint32, n int) []Fused {
	out := make([]Fused, len(list))
	ranks := make([]int, len(list)*n)
	for r, id := range list {
		rk := ranks[r*n : (r+1)*n : (r+1)*n]
		rk[0] = r + 1
		out[r] = Fused{ID: id, Score: 1 / float64(K+r+1), Ranks: rk}
	}
	return out
}
