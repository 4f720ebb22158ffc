package memory

import (
	"fmt"
	"testing"
)

func TestRingGet(t *testing.T) {
	r := newRing(4, 1<<20, nil, 0)
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

// The ring holds what its byte bound allows, newest first, and its floor
// says where badger takes over; a record larger than the bound is not held.
func TestRingBytes(t *testing.T) {
	rec := func(seq uint64, text string) Record {
		return Record{Seq: seq, ID: fmt.Sprintf("id%02d", seq), Text: text}
	}
	one := recordBytes(&Record{ID: "id01", Text: "0123456789"})
	r := newRing(100, 3*one, nil, 1)
	for seq := uint64(1); seq <= 10; seq++ {
		r.push([]Record{rec(seq, "0123456789")})
	}
	got, floor := r.newestMatching(0, func(*Record) bool { return true })
	if len(got) != 3 || got[0].Seq != 10 || got[2].Seq != 8 || floor != 8 {
		t.Fatalf("held %d records (newest %v), floor %d; want 10, 9, 8 and floor 8", len(got), got, floor)
	}
	if r.bytes > r.maxBytes || len(r.recs) > len(got)+len(got)/7+1 {
		t.Errorf("ring holds %d bytes in a slice of %d; want at most %d and %d", r.bytes, len(r.recs), r.maxBytes, len(got)+len(got)/7+1)
	}
	r.push([]Record{rec(11, string(make([]byte, 4*one)))})
	if got, floor := r.newestMatching(0, func(*Record) bool { return true }); len(got) != 0 || floor != 12 {
		t.Errorf("after a record larger than the bound: %d held, floor %d; want 0 and 12", len(got), floor)
	}
	if _, ok := r.get(11, "id11"); ok {
		t.Error("the oversized record is served from the ring")
	}
	r.push([]Record{rec(12, "x")})
	if rec, ok := r.get(12, "id12"); !ok || rec.Text != "x" {
		t.Errorf("get(12) = %+v, %v after the ring emptied", rec, ok)
	}
}

// TestRingSlots: held to its byte bound by records of a turn's size, the
// ring's slice stays near the records it holds: evicted slots are heap the
// bound does not count (at 2–2.5 times the held slots they were 0.3 MiB
// of a 512 KiB ring).
func TestRingSlots(t *testing.T) {
	rec := Record{ID: "01KBG2V8N7X4Q3ZC5M9R1T6W2Y", Namespace: "agent/peer", Kind: KindTurn, Text: "ping 123", Data: make([]byte, 400)}
	r := newRing(4096, 512<<10, nil, 1)
	for seq := uint64(1); seq <= 20000; seq++ {
		rec.Seq = seq
		r.push([]Record{rec})
	}
	held := len(r.recs) - r.start
	if held < 500 || cap(r.recs) > held+held/2 {
		t.Fatalf("%d records held in a slice of %d slots; want at most %d", held, cap(r.recs), held+held/2)
	}
}
