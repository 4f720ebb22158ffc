package rrf

import (
	"math"
	"testing"
)

func TestFuse(t *testing.T) {
	// List 0 ranks 1,2,3; list 1 ranks 3,4,1.
	// 1: 1/61 + 1/63; 3: 1/63 + 1/61 (tie with 1, higher ID first); 2: 1/62; 4: 1/62 (tie, 4 first).
	got := Fuse([]uint32{1, 2, 3}, []uint32{3, 4, 1})
	want := []struct {
		id    uint32
		score float64
		ranks [2]int
	}{
		{3, 1.0/63 + 1.0/61, [2]int{3, 1}},
		{1, 1.0/61 + 1.0/63, [2]int{1, 3}},
		{4, 1.0 / 62, [2]int{0, 2}},
		{2, 1.0 / 62, [2]int{2, 0}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d items %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.id || math.Abs(g.Score-w.score) > 1e-12 || g.Ranks[0] != w.ranks[0] || g.Ranks[1] != w.ranks[1] {
			t.Errorf("item %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestFuseEmptyAndRepeats(t *testing.T) {
	if got := Fuse(nil, nil); len(got) != 0 {
		t.Fatalf("Fuse(nil, nil) = %+v", got)
	}
	got := Fuse([]uint32{5, 5})
	if len(got) != 1 || got[0].Ranks[0] != 1 || got[0].Score != 1.0/61 {
		t.Fatalf("repeated ID: %+v", got)
	}
}

// Fuse runs on every search: its allocations do not grow with the lists.
func TestFuseAllocs(t *testing.T) {
	a, b := make([]uint32, 40), make([]uint32, 40)
	for i := range a {
		a[i], b[i] = uint32(i), uint32(i+20)
	}
	if n := testing.AllocsPerRun(20, func() { Fuse(a, b) }); n > 6 {
		t.Errorf("Fuse of two 40-item lists: %v allocations, want at most 6 (it was one an item)", n)
	}
}

func TestSingleIsFuseOfOneList(t *testing.T) {
	list := []uint32{7, 3, 9, 1}
	got, want := Single(list, 2), Fuse(list, nil)
	if len(got) != len(want) {
		t.Fatalf("Single: %d items, Fuse: %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Score != want[i].Score || got[i].Ranks[0] != want[i].Ranks[0] || got[i].Ranks[1] != want[i].Ranks[1] {
			t.Errorf("item %d: Single %+v, Fuse %+v", i, got[i], want[i])
		}
	}
}
