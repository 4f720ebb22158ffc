package memory

import (
	"slices"
	"sync"
	"unsafe"
)

// ring holds the newest records, decoded, in Seq order, within a bound on
// their number and on the bytes they hold (a count alone does not bound the
// heap: records may be up to MaxRecordBytes each). Every record stored with
// Seq >= floor is in the ring, so newest-N queries whose answer lies above
// floor never touch badger.
type ring struct {
	mu       sync.RWMutex
	recs     []Record // recs[start:] are held, oldest first
	start    int
	bytes    int // what recs[start:] hold, by recordBytes
	maxRecs  int
	maxBytes int
	floor    uint64
}

func newRing(maxRecs, maxBytes int, newest []Record, floor uint64) *ring {
	if maxRecs <= 0 || maxBytes <= 0 {
		return &ring{floor: ^uint64(0)} // holds nothing: every query goes to badger
	}
	r := &ring{maxRecs: maxRecs, maxBytes: maxBytes, floor: floor}
	r.push(newest) // raises floor past what it evicts
	return r
}

// recordSize is what the ring's copy of a Record costs beyond its slot.
var recordSize = int(unsafe.Sizeof(Record{}))

// recordBytes approximates the heap a held record pins: its slot, the
// copies cloneRecord makes, and the strings it shares with the writer.
func recordBytes(r *Record) int {
	n := recordSize + len(r.ID) + len(r.Namespace) + len(r.Kind) + len(r.Author) + len(r.Text) + len(r.Key) + len(r.Data)
	for _, t := range r.Tags {
		n += int(unsafe.Sizeof(t)) + len(t)
	}
	if r.Embedding != nil {
		n += int(unsafe.Sizeof(*r.Embedding)) + len(r.Embedding.Model) + 4*len(r.Embedding.Vector)
	}
	return n
}

// push appends records with increasing Seq, evicting the oldest.
func (r *ring) push(recs []Record) {
	if r.maxRecs == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		r.recs = append(r.recs, cloneRecord(rec))
		r.bytes += recordBytes(&rec)
		for len(r.recs)-r.start > r.maxRecs || r.bytes > r.maxBytes {
			old := &r.recs[r.start]
			r.floor = old.Seq + 1
			r.bytes -= recordBytes(old)
			*old = Record{} // drop what it pins
			r.start++
		}
		// Move the held records down once an eighth of the slice is
		// evicted slots: a record's slot is 256 bytes that the byte bound
		// counts only while it is held, and at a half (as before) the
		// slice settled at 2–2.5 times the held records' slots, 0.3 MiB
		// past the 512 KiB bound. Amortized it is 7 slots copied a push.
		if r.start > 0 && r.start >= len(r.recs)/8 {
			n := copy(r.recs, r.recs[r.start:])
			clear(r.recs[n:])
			r.recs, r.start = r.recs[:n], 0
		}
	}
}

// newestMatching returns up to limit records matching keep, newest first,
// and the ring's floor. It copies only what matches.
func (r *ring) newestMatching(limit int, keep func(*Record) bool) ([]Record, uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	held := r.recs[r.start:]
	var out []Record
	if limit > 0 {
		out = make([]Record, 0, min(limit, len(held)))
	}
	for i := len(held) - 1; i >= 0 && (limit == 0 || len(out) < limit); i-- {
		if rec := &held[i]; keep(rec) {
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
	held := r.recs[r.start:]
	i, ok := slices.BinarySearchFunc(held, seq, func(rec Record, seq uint64) int {
		switch {
		case rec.Seq < seq:
			return -1
		case rec.Seq > seq:
			return 1
		}
		return 0
	})
	if !ok || held[i].ID != id {
		return Record{}, false
	}
	return cloneRecord(held[i]), true
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
