package bm25

import (
	"cmp"
	"math"
	"slices"
)

// postings is a term's documents, ascending, and their term frequencies,
// in 3 bytes a posting where a uint32 and a uint16 took 6: a document is
// its low 16 bits, with the high bits held once for each run of postings
// that shares them, and a tf is a byte, the rare tf of 255 or more kept
// aside. Unlike delta-encoded varints it keeps random access, so Search
// walks and binary-searches postings as it did two slices, at one load
// more a posting.
type postings struct {
	lo   []uint16
	tf8  []uint8           // tfLarge: the tf is in big
	big  map[uint32]uint16 // tfs of tfLarge or more, by index
	runs []hiRun           // ascending; never empty once a posting is added
	// The highest term frequency and the shortest document among the
	// postings: the most the term can add to a document it has not
	// scored yet (see Search).
	maxTF  uint16
	minLen uint32
}

// hiRun says that postings from index at on (up to the next run) are
// documents hi<<16 | lo.
type hiRun struct{ at, hi uint32 }

const tfLarge = math.MaxUint8

// newPostings is a list of one posting, in a document of n tokens.
func newPostings(doc uint32, tf uint16, n uint32) *postings {
	p := &postings{}
	p.add(doc, tf, n)
	return p
}

func (p *postings) len() int { return len(p.lo) }

// add appends a posting of tf in document doc of n tokens, doc above every
// document held.
func (p *postings) add(doc uint32, tf uint16, n uint32) {
	i := uint32(len(p.lo))
	if k := len(p.runs); k == 0 || p.runs[k-1].hi != doc>>16 {
		p.runs = append(p.runs, hiRun{at: i, hi: doc >> 16})
	}
	p.lo = append(p.lo, uint16(doc))
	if tf < tfLarge {
		p.tf8 = append(p.tf8, uint8(tf))
	} else {
		if p.big == nil {
			p.big = map[uint32]uint16{}
		}
		p.big[i] = tf
		p.tf8 = append(p.tf8, tfLarge)
	}
	p.maxTF = max(p.maxTF, tf)
	if i == 0 || n < p.minLen {
		p.minLen = n
	}
}

// tf is the term frequency of posting i.
func (p *postings) tf(i int) uint16 {
	if t := p.tf8[i]; t != tfLarge {
		return uint16(t)
	}
	return p.big[uint32(i)]
}

// doc is the document of posting i.
func (p *postings) doc(i int) uint32 {
	k, _ := slices.BinarySearchFunc(p.runs, uint32(i)+1, func(r hiRun, at uint32) int { return cmp.Compare(r.at, at) })
	return p.runs[k-1].hi<<16 | uint32(p.lo[i])
}

// last is the highest document held; the list is not empty.
func (p *postings) last() uint32 {
	return p.runs[len(p.runs)-1].hi<<16 | uint32(p.lo[len(p.lo)-1])
}

// search returns the index of the first of postings [0, n) whose document
// is d or above (n if none), and whether it is d.
func (p *postings) search(d uint32, n int) (int, bool) {
	k, found := slices.BinarySearchFunc(p.runs, d>>16, func(r hiRun, hi uint32) int { return cmp.Compare(r.hi, hi) })
	if k == len(p.runs) {
		return n, false
	}
	from := min(int(p.runs[k].at), n)
	if !found {
		return from, false
	}
	to := len(p.lo)
	if k+1 < len(p.runs) {
		to = int(p.runs[k+1].at)
	}
	j, ok := slices.BinarySearch(p.lo[from:min(to, n)], uint16(d))
	return from + j, ok
}

// each calls f with every posting's index and document, from index from
// on, ascending, until f returns false.
func (p *postings) each(from int, f func(i int, d uint32) bool) {
	if from >= len(p.lo) {
		return
	}
	k, _ := slices.BinarySearchFunc(p.runs, uint32(from)+1, func(r hiRun, at uint32) int { return cmp.Compare(r.at, at) })
	k--
	for i := from; i < len(p.lo); i++ {
		for k+1 < len(p.runs) && int(p.runs[k+1].at) <= i {
			k++
		}
		if !f(i, p.runs[k].hi<<16|uint32(p.lo[i])) {
			return
		}
	}
}
