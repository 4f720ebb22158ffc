package bm25

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync"
	"unsafe"

	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// BM25 parameters.
const (
	K1 = 1.2
	B  = 0.75
)

// BlockBits sets how many consecutive document numbers share a postings block.
const BlockBits = 12

// entry is a term's postings: a term found in one document (most terms of
// a log of turns are: a number, a name) is that document and its tf, 8
// bytes, where a postings list would cost it some 100.
type entry struct {
	ref uint32 // a single's document; else the list's index in Index.lists
	tf  uint16 // a single's term frequency (>= 1); 0: ref is a list
}

func (e entry) single() bool { return e.tf != 0 }

// Index is an in-RAM inverted index. It is not safe for concurrent use on its
// own: callers serialize Add and Load against Search.
type Index struct {
	dict     dict
	entries  []entry     // by term number in dict
	lists    []*postings // terms in two documents or more
	docLen   []uint32    // by document number; 0: no tokens
	nDocs    int         // documents with at least one token
	totalLen uint64
	// clean is the document from which on postings have changed since the
	// last Flush: a term's blocks from the one holding its first document
	// at or past clean are what Flush yields (documents come in order, so
	// this watermark is all a term's changes take, not an entry a term).
	clean uint32
	acc   sync.Pool // *accumulator
	// Add's scratch: a document's term frequencies and token buffer.
	tf  map[*postings]uint16
	tok []byte
}

// New returns an empty index.
func New() *Index {
	return &Index{dict: newDict(), tf: map[*postings]uint16{}}
}

// Docs is the number of document numbers the index covers (the next one to Add).
func (x *Index) Docs() int { return len(x.docLen) }

// Add indexes text as document doc, which must equal Docs().
func (x *Index) Add(doc uint32, text string) error {
	if int(doc) != len(x.docLen) {
		return fmt.Errorf("bm25: add document %d: want %d (documents are numbered in order)", doc, len(x.docLen))
	}
	// The document's term frequencies, by postings: a term is looked up
	// without a string of its own, and only a new term's bytes are kept.
	tf := x.tf
	clear(tf)
	n := 0
	var err error
	x.tok = tokens(text, x.tok, func(b []byte) {
		n++
		// Only for the look-up and the copy into the dictionary: b is
		// neither changed nor kept while t is in use.
		t := unsafe.String(unsafe.SliceData(b), len(b))
		id, ok := x.dict.find(t)
		if !ok {
			if _, e := x.dict.add(t); e != nil {
				// The document is indexed without its new terms
				// rather than left half added.
				err = fmt.Errorf("bm25: add document %d: %w", doc, e)
				return
			}
			x.entries = append(x.entries, entry{ref: doc, tf: 1}) // this document's alone so far
			return
		}
		e := &x.entries[id]
		var p *postings
		switch {
		case !e.single():
			p = x.lists[e.ref]
		case e.ref == doc:
			if e.tf < math.MaxUint16 {
				e.tf++
			}
			return
		default: // its second document: a postings list from now on
			p = newPostings(e.ref, e.tf, x.docLen[e.ref])
			*e = entry{ref: uint32(len(x.lists))}
			x.lists = append(x.lists, p)
		}
		if tf[p] < math.MaxUint16 {
			tf[p]++
		}
	})
	x.docLen = append(x.docLen, uint32(n))
	if n == 0 {
		return err
	}
	x.nDocs++
	x.totalLen += uint64(n)
	for p, f := range tf {
		p.add(doc, f, uint32(n))
	}
	if len(tf) > 4096 {
		x.tf = map[*postings]uint16{} // clearing costs what the map once held
	}
	return err
}

// Flush yields every postings block changed since the last Flush, encoded,
// and forgets them. The caller persists them with the document lengths.
// It looks at every term (a checkpoint's cost grows with the vocabulary,
// not with what changed; a term's changes cost no RAM in return).
func (x *Index) Flush(yield func(term string, block uint32, data []byte) error) error {
	clean := x.clean
	for id, e := range x.entries {
		if e.single() {
			if e.ref < clean {
				continue
			}
			blk := e.ref >> BlockBits
			var buf [2 * binary.MaxVarintLen32]byte
			b := binary.AppendUvarint(buf[:0], uint64(e.ref-blk<<BlockBits))
			if err := yield(string(x.dict.term(uint32(id))), blk, binary.AppendUvarint(b, uint64(e.tf))); err != nil {
				return err
			}
			continue
		}
		p := x.lists[e.ref]
		if p.len() == 0 || p.last() < clean {
			continue
		}
		t := string(x.dict.term(uint32(id)))
		first, _ := p.search(clean, p.len())
		from, _ := p.search(p.doc(first)>>BlockBits<<BlockBits, p.len())
		var buf []byte
		blk, prev := uint32(0), uint32(0)
		var err error
		p.each(from, func(i int, d uint32) bool {
			if len(buf) > 0 && d>>BlockBits != blk {
				if err = yield(t, blk, buf); err != nil {
					return false
				}
				buf = nil
			}
			if len(buf) == 0 {
				blk, prev = d>>BlockBits, d>>BlockBits<<BlockBits
			}
			buf = binary.AppendUvarint(buf, uint64(d-prev))
			buf = binary.AppendUvarint(buf, uint64(p.tf(i)))
			prev = d
			return true
		})
		if err != nil {
			return err
		}
		if err := yield(t, blk, buf); err != nil {
			return err
		}
	}
	x.clean = uint32(len(x.docLen))
	return nil
}

// Redirty marks changed again every block that holds documents from doc on,
// for a caller whose write of what Flush yielded failed: the next Flush
// yields them again.
func (x *Index) Redirty(doc uint32) { x.clean = min(x.clean, doc) }

// ErrCorrupt reports a postings block that does not decode.
var ErrCorrupt = errors.New("bm25: corrupt postings block")

// SetDocLen restores the token count of document doc when loading; documents
// are restored in order, doc == Docs().
func (x *Index) SetDocLen(doc uint32, n uint32) error {
	if int(doc) != len(x.docLen) {
		return fmt.Errorf("bm25: restore document %d: want %d", doc, len(x.docLen))
	}
	x.docLen = append(x.docLen, n)
	if n > 0 {
		x.nDocs++
		x.totalLen += uint64(n)
	}
	x.clean = uint32(len(x.docLen)) // a restored document's postings are stored
	return nil
}

// LoadBlock restores one block written by Flush. Blocks of a term must come in
// ascending order. Postings of documents >= Docs() are dropped: they were
// written by a checkpoint that did not finish, and will be added again.
func (x *Index) LoadBlock(term string, block uint32, data []byte) error {
	id, known := x.dict.find(term)
	var p *postings // a list already held is extended in place
	var s entry
	isSingle := false
	if known {
		if s = x.entries[id]; s.single() {
			isSingle = true
		} else {
			p = x.lists[s.ref]
		}
	}
	prev := block << BlockBits
	first := true
	for len(data) > 0 {
		d, n := binary.Uvarint(data)
		if n <= 0 {
			return fmt.Errorf("%w: term %q block %d", ErrCorrupt, term, block)
		}
		data = data[n:]
		tf, n := binary.Uvarint(data)
		if n <= 0 || tf == 0 || tf > math.MaxUint16 {
			return fmt.Errorf("%w: term %q block %d", ErrCorrupt, term, block)
		}
		data = data[n:]
		if !first && d == 0 {
			return fmt.Errorf("%w: term %q block %d: repeated document", ErrCorrupt, term, block)
		}
		first = false
		doc := prev + uint32(d)
		if uint64(doc) != uint64(prev)+d || doc>>BlockBits != block {
			return fmt.Errorf("%w: term %q block %d: document %d outside the block", ErrCorrupt, term, block, uint64(prev)+d)
		}
		prev = doc
		if int(doc) >= len(x.docLen) {
			break
		}
		switch {
		case p == nil && !isSingle:
			s, isSingle = entry{ref: doc, tf: uint16(tf)}, true
			continue
		case p == nil:
			if s.ref >= doc {
				return fmt.Errorf("%w: term %q block %d: documents out of order", ErrCorrupt, term, block)
			}
			p = newPostings(s.ref, s.tf, x.docLen[s.ref])
			isSingle = false
		case p.last() >= doc:
			return fmt.Errorf("%w: term %q block %d: documents out of order", ErrCorrupt, term, block)
		}
		p.add(doc, uint16(tf), x.docLen[doc])
	}
	var e entry
	switch {
	case p != nil && known && !x.entries[id].single():
		return nil // extended in place
	case p != nil:
		e = entry{ref: uint32(len(x.lists))}
		x.lists = append(x.lists, p)
	case isSingle:
		e = s
	default:
		return nil // nothing below Docs()
	}
	if known {
		x.entries[id] = e
		return nil
	}
	if _, err := x.dict.add(term); err != nil {
		return fmt.Errorf("bm25: load term %q: %w", term, err)
	}
	x.entries = append(x.entries, e)
	return nil
}

// lookup is the postings of term, nil if no document has it; a term of one
// document gets a list of its own, valid until the index changes.
func (x *Index) lookup(term string) *postings {
	id, ok := x.dict.find(term)
	if !ok {
		return nil
	}
	e := x.entries[id]
	if !e.single() {
		return x.lists[e.ref]
	}
	return newPostings(e.ref, e.tf, x.docLen[e.ref])
}

// idf is the inverse document frequency of a term found in n documents.
func (x *Index) idf(n int) float64 {
	N := float64(x.nDocs)
	return math.Log(1 + (N-float64(n)+0.5)/(float64(n)+0.5))
}

type accumulator struct {
	score   []float32
	touched []uint32
}

// Search returns the k best-scoring documents for q, best first. keep, when
// not nil, limits which documents may be returned.
//
// It prunes as MaxScore does, and stays exact: terms are taken rarest first,
// and once the k-th best score so far reaches the most the remaining
// (common) terms could add, no unseen document can enter the top k, so those
// terms only update documents already scored — found by binary search
// instead of a walk over their long postings lists.
func (x *Index) Search(q Query, k int, keep func(uint32) bool) []vecscan.Result {
	if k <= 0 || x.nDocs == 0 {
		return nil
	}
	acc, _ := x.acc.Get().(*accumulator)
	if acc == nil {
		acc = &accumulator{}
	}
	defer x.acc.Put(acc)
	if len(acc.score) < len(x.docLen) {
		acc.score = make([]float32, len(x.docLen)+len(x.docLen)/4)
	}
	avg := float64(x.totalLen) / float64(x.nDocs)
	type term struct {
		p   *postings
		idf float64
	}
	var terms []term
	for _, t := range q.Terms {
		if p := x.lookup(t); p != nil {
			terms = append(terms, term{p, x.idf(p.len())})
		}
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i].p.len() < terms[j].p.len() })
	rest := make([]float64, len(terms)+1) // rest[i]: the most terms[i:] can add to one document
	for i := len(terms) - 1; i >= 0; i-- {
		rest[i] = rest[i+1] + terms[i].idf*(K1+1)
	}
	score := func(t term, i int, d uint32) float32 {
		tf := float64(t.p.tf(i))
		return float32(t.idf * tf * (K1 + 1) / (tf + K1*(1-B+B*float64(x.docLen[d])/avg)))
	}
	essential := true
	for ti, t := range terms {
		// Strictly above: an unseen document that could only tie the k-th
		// would still enter the top k if it is newer (TopK breaks ties so).
		if essential && ti > 0 && len(acc.touched) >= k && float64(worst(acc, k).Score) > rest[ti] {
			essential = false
		}
		if essential {
			ub := float32(t.idf * float64(t.p.maxTF) * (K1 + 1) / (float64(t.p.maxTF) + K1*(1-B+B*float64(t.p.minLen)/avg)))
			walk(acc, t.p, len(q.Exclude) == 0, ub, rest[ti+1], k, keep, func(i int, d uint32) float32 { return score(t, i, d) })
			continue
		}
		p := t.p
		if n := p.len(); len(acc.touched)*bits.Len(uint(n)) < n {
			for _, d := range acc.touched {
				if i, ok := p.search(d, n); ok {
					acc.score[d] += score(t, i, d)
				}
			}
			continue
		}
		for k, r := range p.runs {
			end := p.len()
			if k+1 < len(p.runs) {
				end = int(p.runs[k+1].at)
			}
			for i := int(r.at); i < end; i++ {
				if d := r.hi<<16 | uint32(p.lo[i]); acc.score[d] != 0 { // scored already, so it passed keep
					acc.score[d] += score(t, i, d)
				}
			}
		}
	}
	// Newest first (touched is mostly ascending): of equal scores TopK
	// keeps the higher documents, so later ties are turned away at once.
	top := vecscan.NewTopK(k)
	for _, d := range slices.Backward(acc.touched) {
		if !x.excluded(q.Exclude, d) {
			top.Push(d, acc.score[d])
		}
		acc.score[d] = 0
	}
	acc.touched = acc.touched[:0]
	return top.Sorted()
}

// walk scores every document of p that keep admits, newest first. It
// stops early (canStop: there are no Exclude terms, which may remove
// documents the k-th best counts) once no document it has not reached can
// enter the top k: the k-th best score so far is above the most such a
// document can reach — ub, what this term gives at most (its highest tf in
// its shortest document; scores only grow), plus rest, what the terms
// after it give at most — or, for the last term (rest 0), equal to it and
// held by a newer document (ties go to the newer, and every one of the k
// so far is at least that good). The documents it did not reach that
// earlier terms scored still get this term's part.
//
// A corpus where most documents share a word ("ping" in every turn) is why:
// without the stop every search walks all of that word's postings.
func walk(acc *accumulator, p *postings, canStop bool, ub float32, rest float64, k int, keep func(uint32) bool, score func(int, uint32) float32) {
	next, seen := k, 0
	r, at, hi := len(p.runs)-1, 0, uint32(0) // the run of posting i, where it starts, its high bits
	if r >= 0 {
		at, hi = int(p.runs[r].at), p.runs[r].hi<<16
	}
	for i := p.len() - 1; i >= 0; i-- {
		for i < at {
			r--
			at, hi = int(p.runs[r].at), p.runs[r].hi<<16
		}
		d := hi | uint32(p.lo[i])
		if keep != nil && !keep(d) {
			continue
		}
		if acc.score[d] == 0 {
			acc.touched = append(acc.touched, d)
		}
		acc.score[d] += score(i, d)
		if seen++; !canStop || seen < next || len(acc.touched) < k || i == 0 {
			continue
		}
		next *= 2
		w := worst(acc, k)
		bound := float64(ub) + rest
		if !(float64(w.Score) > bound || rest == 0 && w.Score == ub && w.ID >= d) {
			continue
		}
		for _, td := range acc.touched {
			if td >= d {
				continue
			}
			if j, ok := p.search(td, i); ok {
				acc.score[td] += score(j, td)
			}
		}
		return
	}
}

// worst is the k-th best document accumulated so far (score 0 when none).
func worst(acc *accumulator, k int) vecscan.Result {
	top := vecscan.NewTopK(k)
	for _, d := range slices.Backward(acc.touched) {
		top.Push(d, acc.score[d])
	}
	w, _ := top.Worst()
	return w
}

func (x *Index) excluded(terms []string, d uint32) bool {
	for _, t := range terms {
		id, ok := x.dict.find(t)
		if !ok {
			continue
		}
		if e := x.entries[id]; e.single() {
			if e.ref == d {
				return true
			}
		} else if _, ok := x.lists[e.ref].search(d, x.lists[e.ref].len()); ok {
			return true
		}
	}
	return false
}

// DocLen is the number of tokens of document doc.
func (x *Index) DocLen(doc uint32) uint32 { return x.docLen[doc] }

// HasText reports whether document doc has at least one token.
func (x *Index) HasText(doc uint32) bool { return x.docLen[doc] > 0 }
