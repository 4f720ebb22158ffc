package bm25

import (
	"errors"
	"hash/maphash"
	"math"
)

// dict numbers terms densely, in the order they are first seen. It holds
// every term's bytes end to end in one buffer and finds them through an
// open-addressing table of term numbers: some 25 bytes a term, where a Go
// map[string]T costs a new term (most terms of a log of turns: a number, a
// name) a string header, a string allocation and a map slot, some 48.
type dict struct {
	seed  maphash.Seed // random: a crafted vocabulary cannot collide on purpose
	slots []uint32     // term number + 1, 0 for empty; a power of two long
	ends  []uint32     // ends[i]: where term i's bytes end in text
	text  []byte
}

// errDictFull reports a vocabulary whose bytes no longer fit the uint32
// offsets (4 GiB of distinct terms).
var errDictFull = errors.New("bm25: the term dictionary is full")

func newDict() dict { return dict{seed: maphash.MakeSeed(), slots: make([]uint32, 16)} }

func (d *dict) len() int { return len(d.ends) }

// term is the bytes of term i, valid until the next add.
func (d *dict) term(i uint32) []byte {
	start := uint32(0)
	if i > 0 {
		start = d.ends[i-1]
	}
	return d.text[start:d.ends[i]]
}

// find returns the number of term t.
func (d *dict) find(t string) (uint32, bool) {
	mask := uint64(len(d.slots) - 1)
	for h := maphash.String(d.seed, t) & mask; ; h = (h + 1) & mask {
		s := d.slots[h]
		if s == 0 {
			return 0, false
		}
		if string(d.term(s-1)) == t {
			return s - 1, true
		}
	}
}

// add numbers t, which find does not know.
func (d *dict) add(t string) (uint32, error) {
	if uint64(len(d.text))+uint64(len(t)) > math.MaxUint32 || len(d.ends) == math.MaxUint32-1 {
		return 0, errDictFull
	}
	if 4*(len(d.ends)+1) > 3*len(d.slots) {
		d.grow()
	}
	i := uint32(len(d.ends))
	d.text = append(d.text, t...)
	d.ends = append(d.ends, uint32(len(d.text)))
	d.place(i, maphash.String(d.seed, t))
	return i, nil
}

func (d *dict) place(i uint32, h uint64) {
	mask := uint64(len(d.slots) - 1)
	for h &= mask; d.slots[h] != 0; h = (h + 1) & mask {
	}
	d.slots[h] = i + 1
}

func (d *dict) grow() {
	d.slots = make([]uint32, 2*len(d.slots))
	for i := range uint32(len(d.ends)) {
		d.place(i, maphash.Bytes(d.seed, d.term(i)))
	}
}
