package bm25

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
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
	t.Run("small", func(t *testing.T) { testAgainstMaps(t, 2*(1<<BlockBits)+777) })
	// Documents past 65535 (postings of several high halves) and tfs
	// past a byte.
	t.Run("large", func(t *testing.T) { testAgainstMaps(t, 1<<16+3000) })
}

func testAgainstMaps(t *testing.T, n int) {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	zipf := rand.NewZipf(r, 1.1, 1, 20000)
	x, ref := New(), mapIndex{}
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
		switch {
		case d%9973 == 0:
			ws = append(ws, strings.Repeat("many ", 200+r.IntN(400)))
		case d%20011 == 1:
			ws = append(ws, "sparse")
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
			var docs []uint32
			for i := range p.len() {
				docs = append(docs, p.doc(i))
				got[p.doc(i)] = p.tf(i)
			}
			if !slices.IsSorted(docs) || !reflect.DeepEqual(got, ps) {
				t.Fatalf("%s: term %q: postings %v, want %v", name, term, got, ps)
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
	avg := float64(x.totalLen) / float64(x.nDocs)
	for qi := range 300 {
		q := Query{Terms: []string{terms[r.IntN(len(terms))], fmt.Sprintf("w%d", zipf.Uint64())}}
		switch qi % 10 {
		case 0:
			q.Exclude = []string{terms[r.IntN(len(terms))]}
		case 1:
			q.Terms = append(q.Terms, "many", "sparse")
		}
		a, b := x.Search(q, 10, nil), y.Search(q, 10, nil)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%+v: reloaded index answers %v, the built one %v", q, b, a)
		}
		if qi%30 != 0 {
			continue
		}
		// Scored from the map representation, every document.
		scores := map[uint32]float64{}
		for _, term := range slices.Compact(slices.Clone(q.Terms)) {
			for d, tf := range ref[term] {
				f := float64(tf)
				scores[d] += x.idf(len(ref[term])) * f * (K1 + 1) / (f + K1*(1-B+B*float64(x.DocLen(d))/avg))
			}
		}
		for _, e := range q.Exclude {
			for d := range ref[e] {
				delete(scores, d)
			}
		}
		want := slices.SortedFunc(maps.Values(scores), func(a, b float64) int { return cmp.Compare(b, a) })
		if len(a) != min(10, len(want)) {
			t.Fatalf("%+v: %d hits, the map representation scores %d", q, len(a), len(want))
		}
		for i, h := range a {
			if math.Abs(float64(h.Score)-want[i]) > 1e-4 || math.Abs(float64(h.Score)-scores[h.ID]) > 1e-4 {
				t.Fatalf("%+v: hit %d = %+v, want score %v", q, i, h, want[i])
			}
		}
	}
}

// FuzzPostings checks postings against two plain slices: documents from
// the input's varint gaps (so that they cross high halves), tfs from its
// bytes (some past 255), then every posting, search and each.
func FuzzPostings(f *testing.F) {
	f.Add([]byte{1, 1, 2, 0xff, 0xff, 0x03, 1, 0xc8, 0x02})
	f.Add([]byte{0x80, 0x80, 0x04, 7, 0x80, 0x80, 0x04, 9, 5, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		p := &postings{}
		var docs []uint32
		var tfs []uint16
		doc := uint32(0)
		for len(in) > 0 {
			g, n := binary.Uvarint(in)
			if n <= 0 || g > 1<<20 {
				return
			}
			in = in[n:]
			tf, n := binary.Uvarint(in)
			if n <= 0 || tf == 0 || tf > math.MaxUint16 {
				return
			}
			in = in[n:]
			if len(docs) > 0 && g == 0 || uint64(doc)+g > math.MaxUint32 {
				return
			}
			doc += uint32(g)
			p.add(doc, uint16(tf), 1)
			docs, tfs = append(docs, doc), append(tfs, uint16(tf))
		}
		if p.len() != len(docs) {
			t.Fatalf("%d postings, want %d", p.len(), len(docs))
		}
		for i := range docs {
			if p.doc(i) != docs[i] || p.tf(i) != tfs[i] {
				t.Fatalf("posting %d = %d/%d, want %d/%d", i, p.doc(i), p.tf(i), docs[i], tfs[i])
			}
		}
		if len(docs) > 0 && p.last() != docs[len(docs)-1] {
			t.Fatalf("last %d, want %d", p.last(), docs[len(docs)-1])
		}
		for _, d := range docs {
			for _, probe := range []uint32{d - 1, d, d + 1, d &^ 0xffff, d | 0xffff} {
				for _, n := range []int{0, len(docs) / 2, len(docs)} {
					wi, wok := slices.BinarySearch(docs[:n], probe)
					if i, ok := p.search(probe, n); i != wi || ok != wok {
						t.Fatalf("search(%d, %d) = %d, %v; want %d, %v", probe, n, i, ok, wi, wok)
					}
				}
			}
		}
		for from := range len(docs) + 1 {
			var got []uint32
			p.each(from, func(i int, d uint32) bool {
				if i != from+len(got) {
					t.Fatalf("each from %d: index %d", from, i)
				}
				got = append(got, d)
				return true
			})
			if !slices.Equal(got, docs[from:]) {
				t.Fatalf("each from %d = %v, want %v", from, got, docs[from:])
			}
		}
	})
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
