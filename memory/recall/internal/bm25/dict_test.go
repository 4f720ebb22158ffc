package bm25

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// mapIndex is the representation the dictionary replaced, kept as the
// reference: every term's postings in a map by term, as document → tf.
type mapIndex map[string]map[uint32]uint16

func (m mapIndex) add(doc uint32, text string) {
	for _, t := range Tokenize(text) {
		if m[t] == nil {
			m[t] = map[uint32]uint16{}
		}
		m[t][doc]++
	}
}

// blocks is what Flush should yield for m: each term's postings in blocks
// of consecutive document numbers, delta-encoded varints.
func (m mapIndex) blocks() map[string]map[uint32][]byte {
	out := map[string]map[uint32][]byte{}
	for t, ps := range m {
		out[t] = map[uint32][]byte{}
		prev := uint32(0)
		for _, d := range slices.Sorted(maps.Keys(ps)) {
			blk := d >> BlockBits
			if _, ok := out[t][blk]; !ok {
				prev = blk << BlockBits
			}
			b := binary.AppendUvarint(out[t][blk], uint64(d-prev))
			out[t][blk] = binary.AppendUvarint(b, uint64(ps[d]))
			prev = d
		}
	}
	return out
}

// TestDictAgainstMaps builds an index of random documents (a vocabulary
// where most terms occur once, as numbers in a log of turns do, and some
// in many documents across blocks) and compares every term's postings,
// what Flush yields, and what a reloaded index holds and answers with the
// map representation.
func TestDictAgainstMaps(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	zipf := rand.NewZipf(r, 1.1, 1, 20000)
	x, ref := New(), mapIndex{}
	n := 2*(1<<BlockBits) + 777
	for d := range n {
		var ws []string
		for range r.IntN(9) {
			switch r.IntN(4) {
			case 0:
				ws = append(ws, fmt.Sprintf("n%d", r.Uint64()))
			case 1:
				ws = append(ws, strings.Repeat("é", 1+r.IntN(40)))
			default:
				ws = append(ws, fmt.Sprintf("w%d", zipf.Uint64()))
			}
		}
		text := strings.Join(ws, " ")
		if err := x.Add(uint32(d), text); err != nil {
			t.Fatal(err)
		}
		ref.add(uint32(d), text)
	}
	if x.dict.len() != len(ref) || len(x.entries) != len(ref) {
		t.Fatalf("%d terms in the dictionary, %d entries; want %d", x.dict.len(), len(x.entries), len(ref))
	}
	check := func(name string, x *Index) {
		t.Helper()
		for term, ps := range ref {
			p := x.lookup(term)
			if p == nil {
				t.Fatalf("%s: term %q missing", name, term)
			}
			got := map[uint32]uint16{}
			for i, d := range p.docs {
				got[d] = p.tfs[i]
			}
			if !slices.IsSorted(p.docs) || !reflect.DeepEqual(got, ps) {
				t.Fatalf("%s: term %q: postings %v %v, want %v", name, term, p.docs, p.tfs, ps)
			}
			if single(x, term) != (len(ps) == 1) {
				t.Fatalf("%s: term %q of %d documents held as a single: %v", name, term, len(ps), single(x, term))
			}
		}
		if x.lookup("absent") != nil {
			t.Fatalf("%s: an absent term has postings", name)
		}
	}
	check("built", x)
	got := map[string]map[uint32][]byte{}
	if err := x.Flush(func(term string, b uint32, data []byte) error {
		if got[term] == nil {
			got[term] = map[uint32][]byte{}
		}
		got[term][b] = slices.Clone(data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := ref.blocks(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Flush yielded %d terms' blocks; the map representation encodes %d, or they differ", len(got), len(want))
	}
	y := New()
	for d := range x.Docs() {
		if err := y.SetDocLen(uint32(d), x.DocLen(uint32(d))); err != nil {
			t.Fatal(err)
		}
	}
	for _, term := range slices.Sorted(maps.Keys(got)) {
		for _, b := range slices.Sorted(maps.Keys(got[term])) {
			if err := y.LoadBlock(term, b, got[term][b]); err != nil {
				t.Fatal(err)
			}
		}
	}
	check("reloaded", y)
	terms := slices.Sorted(maps.Keys(ref))
	for range 300 {
		q := Query{Terms: []string{terms[r.IntN(len(terms))], fmt.Sprintf("w%d", zipf.Uint64())}}
		if r.IntN(3) == 0 {
			q.Exclude = []string{terms[r.IntN(len(terms))]}
		}
		a, b := x.Search(q, 10, nil), y.Search(q, 10, nil)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%+v: reloaded index answers %v, the built one %v", q, b, a)
		}
	}
}

// FuzzDict checks the dictionary against a map: terms split from the
// input at spaces are numbered in the order first seen, found again, and
// their bytes kept.
func FuzzDict(f *testing.F) {
	f.Add("a b a c")
	f.Add("ping 1 ping 2 ping 3 final echo")
	f.Add(strings.Repeat("x ", 100) + "y")
	f.Fuzz(func(t *testing.T, s string) {
		d := newDict()
		want := map[string]uint32{}
		var order []string
		for _, term := range strings.Split(s, " ") {
			id, ok := d.find(term)
			wid, wok := want[term]
			if ok != wok || ok && id != wid {
				t.Fatalf("find(%q) = %d, %v; want %d, %v", term, id, ok, wid, wok)
			}
			if ok {
				continue
			}
			id, err := d.add(term)
			if err != nil {
				t.Fatal(err)
			}
			if id != uint32(len(order)) {
				t.Fatalf("add(%q) = %d, want %d", term, id, len(order))
			}
			want[term] = id
			order = append(order, term)
		}
		if d.len() != len(order) {
			t.Fatalf("%d terms, want %d", d.len(), len(order))
		}
		for i, term := range order {
			if got := string(d.term(uint32(i))); got != term {
				t.Fatalf("term %d = %q, want %q", i, got, term)
			}
			if id, ok := d.find(term); !ok || id != uint32(i) {
				t.Fatalf("find(%q) = %d, %v after all adds; want %d", term, id, ok, i)
			}
		}
	})
}
