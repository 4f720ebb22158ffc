package memory

import (
	"fmt"
	"testing"
)

func TestRingGet(t *testing.T) {
	r := newRing(4, nil, 0)
	for seq := uint64(1); seq <= 10; seq++ {
		r.push([]Record{{Seq: seq, ID: fmt.Sprint("id", seq)}})
	}
	for seq := uint64(1); seq <= 11; seq++ {
		rec, ok := r.get(seq, fmt.Sprint("id", seq))
		if want := seq >= 7 && seq <= 10; ok != want || ok && rec.Seq != seq {
			t.Errorf("get(%d) = %+v, %v; want found %v", seq, rec, ok, want)
		}
	}
	if _, ok := r.get(9, "other"); ok {
		t.Error("a record with another ID under the same Seq was returned")
	}
}
