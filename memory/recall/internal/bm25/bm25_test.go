package bm25

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func corpus(t *testing.T, docs ...string) *Index {
	t.Helper()
	x := New()
	for i, d := range docs {
		if err := x.Add(uint32(i), d); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// TestScoresByHand checks scores against values worked out by hand for a
// three-document corpus: N 3, average length 7/3, idf(red) = idf(drone) =
// ln(1 + 1.5/2.5) = ln 1.6.
func TestScoresByHand(t *testing.T) {
	x := corpus(t, "red robot", "Red red, drone!", "blue drone")
	tests := []struct {
		query string
		want  map[uint32]float64
		order []uint32
	}{
		// d1: tf 2, length 3: ln1.6 * 2*2.2 / (2 + 1.2*(0.25 + 0.75*3/(7/3)))
		// d0: tf 1, length 2: ln1.6 * 1*2.2 / (1 + 1.2*(0.25 + 0.75*2/(7/3)))
		{"red", map[uint32]float64{1: 0.5981864372218454, 0: 0.4991762683023676}, []uint32{1, 0}},
		{"red drone", map[uint32]float64{1: 1.0190036401511668, 0: 0.4991762683023676, 2: 0.4991762683023676}, nil},
		{"red -robot", map[uint32]float64{1: 0.5981864372218454}, []uint32{1}},
		{"green", map[uint32]float64{}, nil},
	}
	for _, tt := range tests {
		got := x.Search(ParseQuery(tt.query), 10, nil)
		if len(got) != len(tt.want) {
			t.Fatalf("%q: %d hits %+v, want %d", tt.query, len(got), got, len(tt.want))
		}
		for i, r := range got {
			if w, ok := tt.want[r.ID]; !ok || math.Abs(float64(r.Score)-w) > 1e-6 {
				t.Errorf("%q: doc %d score %v, want %v", tt.query, r.ID, r.Score, w)
			}
			if tt.order != nil && r.ID != tt.order[i] {
				t.Errorf("%q: hit %d is doc %d, want %d", tt.query, i, r.ID, tt.order[i])
			}
		}
	}
}

func TestSearchFilterAndK(t *testing.T) {
	x := corpus(t, "dock", "dock dock", "dock", "", "dock")
	got := x.Search(ParseQuery("dock"), 2, func(d uint32) bool { return d != 1 })
	if len(got) != 2 {
		t.Fatalf("got %+v, want 2 hits", got)
	}
	for _, r := range got {
		if r.ID == 1 {
			t.Fatalf("filtered-out doc 1 returned: %+v", got)
		}
	}
}

func TestFlushLoadRoundTrip(t *testing.T) {
	x := New()
	for i := 0; i < 3*(1<<BlockBits)+5; i++ {
		text := fmt.Sprintf("w%d common", i%7)
		if i%2 == 0 {
			text += " even"
		}
		if err := x.Add(uint32(i), text); err != nil {
			t.Fatal(err)
		}
	}
	blocks := map[string]map[uint32][]byte{}
	flush := func() {
		if err := x.Flush(func(term string, b uint32, data []byte) error {
			if blocks[term] == nil {
				blocks[term] = map[uint32][]byte{}
			}
			blocks[term][b] = data
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	flush()
	x.Add(uint32(x.Docs()), "common late") // only the last block of "common" is dirty now
	n := 0
	x.Flush(func(term string, b uint32, data []byte) error {
		n++
		if blocks[term] == nil {
			blocks[term] = map[uint32][]byte{}
		}
		blocks[term][b] = data
		return nil
	})
	if n != 2 { // "common" and "late", one block each
		t.Fatalf("second flush wrote %d blocks, want 2", n)
	}
	// A caller whose write failed marks the blocks from a document on
	// changed again: the last block of every term that reaches it.
	x.Redirty(3 << BlockBits)
	again := map[string]uint32{}
	x.Flush(func(term string, b uint32, data []byte) error {
		again[term] = b
		if !reflect.DeepEqual(data, blocks[term][b]) {
			t.Errorf("redirtied block %q/%d differs from the one flushed before", term, b)
		}
		return nil
	})
	// Block 3 holds documents 12288-12292 (w3 w4 w5 w6 w0) and "common late".
	if want := map[string]uint32{"common": 3, "late": 3, "even": 3, "w0": 3, "w3": 3, "w4": 3, "w5": 3, "w6": 3}; !reflect.DeepEqual(again, want) {
		t.Fatalf("after Redirty, Flush yielded %v, want %v", again, want)
	}
	y := New()
	for d := 0; d < x.Docs(); d++ {
		y.SetDocLen(uint32(d), x.docLen[d])
	}
	for term, bs := range blocks {
		for b := uint32(0); b < 8; b++ {
			if data, ok := bs[b]; ok {
				if err := y.LoadBlock(term, b, data); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, q := range []string{"common", "even w3", "late", "w6 -even"} {
		if a, b := x.Search(ParseQuery(q), 20, nil), y.Search(ParseQuery(q), 20, nil); !reflect.DeepEqual(a, b) {
			t.Fatalf("%q: reloaded index answers %+v, want %+v", q, b, a)
		}
	}
	// A block from an unfinished checkpoint (documents past Docs) is truncated.
	z := New()
	z.SetDocLen(0, 1)
	if err := z.LoadBlock("common", 0, blocks["common"][0]); err != nil {
		t.Fatal(err)
	}
	if got := z.Search(ParseQuery("common"), 10, nil); len(got) != 1 {
		t.Fatalf("truncated load: %+v, want only doc 0", got)
	}
	if err := z.LoadBlock("x", 0, []byte{0x80}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage block: err = %v, want ErrCorrupt", err)
	}
}

func TestAddOutOfOrder(t *testing.T) {
	if err := New().Add(3, "x"); err == nil || !strings.Contains(err.Error(), "want 0") {
		t.Fatalf("err = %v", err)
	}
}

func TestTokenizeAndParse(t *testing.T) {
	if got, want := Tokenize("Robot-1 at Dock_3: ÉTÉ 北京 "+strings.Repeat("x", 65)), []string{"robot", "1", "at", "dock", "3", "été", "北京"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tokenize = %q, want %q", got, want)
	}
	q := ParseQuery("battery low -charging battery - -x-y")
	if want := (Query{Terms: []string{"battery", "low"}, Exclude: []string{"charging", "x", "y"}}); !reflect.DeepEqual(q, want) {
		t.Errorf("ParseQuery = %+v, want %+v", q, want)
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "red robot", "Robot-1 -dock", "\xff\xfe", "ÉTÉ 北京", "--a", strings.Repeat("ab ", 50)} {
		f.Add(s)
	}
	f.Add("Ünïcode UPPER lower 123 \u2028 ÀB-cD ǅ ﬃ")
	f.Fuzz(func(t *testing.T, s string) {
		toks := Tokenize(s)
		// The allocation-free tokenizer splits as the first one did.
		if want := referenceTokenize(s); !slices.Equal(toks, want) {
			t.Fatalf("Tokenize(%q) = %q, the reference splits %q", s, toks, want)
		}
		if got, want := ParseQuery(s), referenceParseQuery(s); !slices.Equal(got.Terms, want.Terms) || !slices.Equal(got.Exclude, want.Exclude) {
			t.Fatalf("ParseQuery(%q) = %+v, the reference parses %+v", s, got, want)
		}
		for _, tok := range toks {
			if tok == "" || len(tok) > MaxTokenBytes || !utf8.ValidString(tok) {
				t.Fatalf("bad token %q from %q", tok, s)
			}
			for _, r := range tok {
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					t.Fatalf("token %q holds separator %q", tok, r)
				}
			}
		}
		// Tokenizing is stable: the tokens joined tokenize to themselves.
		if again := Tokenize(strings.Join(toks, " ")); len(toks) > 0 && !reflect.DeepEqual(again, toks) {
			t.Fatalf("Tokenize(join(%q)) = %q", toks, again)
		}
		q := ParseQuery(s)
		seen := map[string]bool{}
		for _, term := range q.Terms {
			if seen[term] {
				t.Fatalf("repeated term %q in %+v", term, q)
			}
			seen[term] = true
		}
		x := New()
		x.Add(0, s)
		x.Search(q, 5, nil)
	})
}

// TestPruningIsExact compares Search with a brute-force BM25 over a
// Zipf-distributed corpus, where common terms trigger the pruning.
func TestPruningIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	zipf := rand.NewZipf(r, 1.2, 1, 499)
	word := func() string { return fmt.Sprintf("w%d", zipf.Uint64()) }
	x := New()
	var docs [][]string
	for i := 0; i < 4000; i++ {
		var ws []string
		for range 3 + r.IntN(10) {
			ws = append(ws, word())
		}
		docs = append(docs, ws)
		x.Add(uint32(i), strings.Join(ws, " "))
	}
	avg := float64(x.totalLen) / float64(x.nDocs)
	for qi := 0; qi < 200; qi++ {
		q := ParseQuery(word() + " " + word() + " " + word())
		want := make([]float64, 0, len(docs))
		for d, ws := range docs {
			var s float64
			for _, term := range q.Terms {
				tf := 0
				for _, w := range ws {
					if w == term {
						tf++
					}
				}
				if tf > 0 {
					n := x.lookup(term).len()
					s += x.idf(n) * float64(tf) * (K1 + 1) / (float64(tf) + K1*(1-B+B*float64(len(ws))/avg))
				}
			}
			if s > 0 && d%5 != 0 {
				want = append(want, s)
			}
		}
		sort.Sort(sort.Reverse(sort.Float64Slice(want)))
		got := x.Search(q, 10, func(d uint32) bool { return d%5 != 0 })
		if len(got) != min(10, len(want)) {
			t.Fatalf("query %v: %d hits, want %d", q, len(got), min(10, len(want)))
		}
		for i, g := range got {
			if g.ID%5 == 0 || math.Abs(float64(g.Score)-want[i]) > 1e-4 {
				t.Fatalf("query %v: hit %d = %+v, want score %v", q, i, g, want[i])
			}
		}
	}
}

// TestCommonTermStopsEarly: a word in every document ("ping" in every
// turn) is not walked to its end once the newest documents settle the top
// k, and the hits are still exact, ties going to the newest.
func TestCommonTermStopsEarly(t *testing.T) {
	x := New()
	var docs []string
	for i := 0; i < 3000; i++ {
		s := fmt.Sprintf("ping %d final echo ping %d", i, i)
		switch {
		case i%11 == 0:
			s += " and a longer tail of words"
		case i%13 == 0:
			s = fmt.Sprintf("pong %d", i)
		}
		docs = append(docs, s)
		x.Add(uint32(i), s)
	}
	avg := float64(x.totalLen) / float64(x.nDocs)
	keep := func(d uint32) bool { return d%7 != 0 }
	for _, text := range []string{"ping", "ping 5", "ping 77777", "ping 2999", "pong ping", "ping final -echo", "ping 22 tail"} {
		q := ParseQuery(text)
		type hit struct {
			id    uint32
			score float64
		}
		var want []hit
		for d, s := range docs {
			toks := Tokenize(s)
			if !keep(uint32(d)) || slices.ContainsFunc(q.Exclude, func(e string) bool { return slices.Contains(toks, e) }) {
				continue
			}
			var sc float64
			for _, term := range q.Terms {
				tf := 0
				for _, w := range toks {
					if w == term {
						tf++
					}
				}
				if tf > 0 {
					sc += x.idf(x.lookup(term).len()) * float64(tf) * (K1 + 1) / (float64(tf) + K1*(1-B+B*float64(len(toks))/avg))
				}
			}
			if sc > 0 {
				want = append(want, hit{uint32(d), sc})
			}
		}
		sort.Slice(want, func(i, j int) bool {
			if math.Abs(want[i].score-want[j].score) > 1e-6 {
				return want[i].score > want[j].score
			}
			return want[i].id > want[j].id
		})
		visited := 0
		got := x.Search(q, 10, func(d uint32) bool { visited++; return keep(d) })
		if len(got) != min(10, len(want)) {
			t.Fatalf("%q: %d hits, want %d", text, len(got), min(10, len(want)))
		}
		if text == "ping" && visited > 100 {
			t.Errorf("%q: %d postings walked of %d; want the walk to stop once the newest settle the top 10", text, visited, x.lookup("ping").len())
		}
		for i, g := range got {
			if g.ID != want[i].id || math.Abs(float64(g.Score)-want[i].score) > 1e-4 {
				t.Fatalf("%q: hit %d = %+v, want %+v (all: %v)", text, i, g, want[i], got)
			}
		}
	}
}

// referenceTokenize is the tokenizer as first written (a string a token,
// through strings.Builder): the allocation-free one must split alike.
func referenceTokenize(s string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 && b.Len() <= MaxTokenBytes {
			out = append(out, b.String())
		}
		b.Reset()
	}
	for _, r := range s {
		if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			flush()
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	flush()
	return out
}

// referenceParseQuery is ParseQuery as first written.
func referenceParseQuery(s string) Query {
	var q Query
	seen := map[string]bool{}
	for _, field := range strings.Fields(s) {
		dst := &q.Terms
		if len(field) > 1 && field[0] == '-' {
			dst, field = &q.Exclude, field[1:]
		}
		for _, t := range referenceTokenize(field) {
			key := t
			if dst == &q.Exclude {
				key = "-" + t
			}
			if !seen[key] {
				seen[key] = true
				*dst = append(*dst, t)
			}
		}
	}
	return q
}

// TestParseQueryManyTerms covers the switch from looking at each term to
// a set, past 32 terms.
func TestParseQueryManyTerms(t *testing.T) {
	var words []string
	for i := range 100 {
		words = append(words, fmt.Sprintf("w%d -x%d w%d", i%40, i%7, i%40))
	}
	s := strings.Join(words, " ")
	if got, want := ParseQuery(s), referenceParseQuery(s); !slices.Equal(got.Terms, want.Terms) || !slices.Equal(got.Exclude, want.Exclude) {
		t.Fatalf("ParseQuery = %+v, want %+v", got, want)
	}
}

// TestAddAllocs: a document of known terms costs Add no allocation a token.
func TestAddAllocs(t *testing.T) {
	x := New()
	x.Add(0, "ping 1 final echo ping 1")
	doc := uint32(1)
	allocs := testing.AllocsPerRun(100, func() {
		x.Add(doc, "Ping 1 FINAL echo ping 1")
		doc++
	})
	// What is left is the postings slices growing now and then.
	if allocs > 1 {
		t.Errorf("Add allocates %.1f times a document of known terms", allocs)
	}
}

// TestSingles covers terms of one document: kept apart from postings
// lists, turned into one by a second document (added, or loaded from a
// later block), flushed and loaded alike, and excluded by "-term".
func TestSingles(t *testing.T) {
	x := New()
	texts := map[uint32]string{0: "rare alone", 1: "common", 2: "common twice twice"}
	for d := uint32(3); d < 1<<BlockBits+10; d++ {
		texts[d] = "common"
	}
	texts[1<<BlockBits+3] = "rare common"
	for d := uint32(0); d < uint32(len(texts)); d++ {
		if err := x.Add(d, texts[d]); err != nil {
			t.Fatal(err)
		}
	}
	if !single(x, "alone") || x.lookup("rare").len() != 2 || x.lookup("twice").len() != 1 || x.lookup("twice").tf(0) != 2 {
		t.Fatalf("alone single %v; rare %+v; twice %+v", single(x, "alone"), x.lookup("rare"), x.lookup("twice"))
	}
	blocks := map[string][][2]any{}
	if err := x.Flush(func(term string, b uint32, data []byte) error {
		blocks[term] = append(blocks[term], [2]any{b, slices.Clone(data)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	y := New()
	for d := range x.Docs() {
		y.SetDocLen(uint32(d), x.DocLen(uint32(d)))
	}
	for term, bs := range blocks {
		slices.SortFunc(bs, func(a, b [2]any) int { return int(a[0].(uint32)) - int(b[0].(uint32)) })
		for _, b := range bs {
			if err := y.LoadBlock(term, b[0].(uint32), b[1].([]byte)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if single(y, "rare") || y.lookup("rare").len() != 2 {
		t.Fatalf("loaded from two blocks of one posting each, rare is %+v", y.lookup("rare"))
	}
	if err := y.Add(uint32(y.Docs()), "alone again"); err != nil {
		t.Fatal(err)
	}
	if err := x.Add(uint32(x.Docs()), "alone again"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"rare", "alone", "twice", "again", "common -rare", "common -alone"} {
		if a, b := x.Search(ParseQuery(q), 5, nil), y.Search(ParseQuery(q), 5, nil); !reflect.DeepEqual(a, b) || len(a) == 0 {
			t.Errorf("%q: reloaded index answers %+v, the first %+v", q, b, a)
		}
	}
	for _, r := range x.Search(ParseQuery("common -alone"), 20, nil) {
		if r.ID == 0 || r.ID == uint32(x.Docs()-1) {
			t.Errorf("common -alone returned document %d, which has alone", r.ID)
		}
	}
}

// single reports whether term is held as a term of one document.
func single(x *Index, term string) bool {
	id, ok := x.dict.find(term)
	return ok && x.entries[id].single()
}
