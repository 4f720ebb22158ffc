package memory

import (
	"slices"
	"sync"
)

// ring holds the newest records, decoded, in Seq order. Every record stored
// with Seq >= floor is in the ring, so newest-N queries whose answer lies
// above floor never touch badger.
type ring struct {
	mu    sync.RWMutex
	buf   []Record // circular; len(buf) is the capacity
	start int      // index of the oldest record
	n     int
	floor uint64
}

func newRing(capacity int, newest []Record, floor uint64) *ring {
	if capacity <= 0 {
		return &ring{floor: ^uint64(0)} // holds nothing: every query goes to badger
	}
	r := &ring{buf: make([]Record, capacity), floor: floor}
	r.push(newest) // raises floor past what it evicts
	return r
}

// push appends records with increasing Seq, evicting the oldest.
func (r *ring) push(recs []Record) {
	if len(r.buf) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		rec = cloneRecord(rec)
		if r.n == len(r.buf) {
			r.floor = r.buf[r.start].Seq + 1
			r.buf[r.start] = rec
			r.start = (r.start + 1) % len(r.buf)
			continue
		}
		r.buf[(r.start+r.n)%len(r.buf)] = rec
		r.n++
	}
}

// newestMatching returns up to limit records matching keep, newest first,
// and the ring's floor. It copies only what matches.
func (r *ring) newestMatching(limit int, keep func(*Record) bool) ([]Record, uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Record
	if limit > 0 {
		out = make([]Record, 0, min(limit, r.n))
	}
	for i := r.n - 1; i >= 0 && (limit == 0 || len(out) < limit); i-- {
		rec := &r.buf[(r.start+i)%len(r.buf)]
		if keep(rec) {
			out = append(out, cloneRecord(*rec))
		}
	}
	return out, r.floor
}

// get returns a copy of the record with the given Seq and ID if the ring
// holds it. Records sit in Seq order, so a binary search finds it.
func (r *ring) get(seq uint64, id string) (Record, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	lo, hi := 0, r.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.buf[(r.start+mid)%len(r.buf)].Seq < seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == r.n {
		return Record{}, false
	}
	rec := &r.buf[(r.start+lo)%len(r.buf)]
	if rec.Seq != seq || rec.ID != id {
		return Record{}, false
	}
	return cloneRecord(*rec), true
}

// cloneRecord copies what a record shares by reference, so that what the
// ring holds and what callers get never alias.
func cloneRecord(r Record) Record {
	r.Tags = slices.Clone(r.Tags)
	r.Data = slices.Clone(r.Data)
	if r.Embedding != nil {
		e := *r.Embedding
		e.Vector = slices.Clone(e.Vector)
		r.Embedding = &e
	}
	return r
}
