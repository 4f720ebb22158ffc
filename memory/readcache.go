package memory

import "sync"

// readCacheSlots is how many records Get keeps of what it read from
// badger. Recall fetches its hits by ID every turn, and an agent asked the
// same thing again gets the same hits back: once they are older than the
// ring holds, each was read from badger and decoded again on every turn
// (about 13 allocations a record, and the turn's allocations rose with the
// store's size). Slots are indexed by the Seq bits of the ID, so the
// records of one stretch of the log never push each other out.
const readCacheSlots = 256

// readCache holds copies of records Get read from badger, within a bound on
// the bytes they hold. It keeps no fact: a fact's ValidTo depends on the
// versions written after it. Every other record is immutable once written
// (the log is append-only), so a copy held here is the record; expiry is
// checked on every Get, as for the ring.
// Its zero value is empty; the first put sizes it.
type readCache struct {
	mu    sync.RWMutex
	slots []Record // nil until the first put; a slot with ID "" is empty
	bytes int      // what slots hold, by recordBytes
}

// get returns a copy of the record whose ID's Seq bits are key and whose ID
// is id, if the cache holds it.
func (c *readCache) get(key uint64, id string) (Record, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.slots == nil {
		return Record{}, false
	}
	rec := &c.slots[key%readCacheSlots]
	if rec.ID != id {
		return Record{}, false
	}
	return cloneRecord(*rec), true
}

// put keeps a copy of rec, read from badger for the ID whose Seq bits are
// key, in place of what its slot held. The cache holds at most a quarter
// of the ring's bytes, ringBytes (128 KiB by default, 16 KiB for
// ProfileLowMem; Get keeps nothing here for a store without a ring). A
// record larger than a sixteenth of that is not kept: a few large ones
// would push out every small one.
func (c *readCache) put(key uint64, rec *Record, ringBytes int) {
	maxBytes := max(ringBytes, 0) / 4
	size := recordBytes(rec)
	if rec.Kind == KindFact || size > maxBytes/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots == nil {
		c.slots = make([]Record, readCacheSlots)
	}
	slot := &c.slots[key%readCacheSlots]
	if slot.ID != "" {
		c.bytes -= recordBytes(slot)
		*slot = Record{}
	}
	// A full cache makes room by dropping the records in the slots after
	// this one: otherwise, once full, it would take nothing new for an
	// empty slot.
	for i := uint64(1); c.bytes+size > maxBytes && i < readCacheSlots; i++ {
		if next := &c.slots[(key+i)%readCacheSlots]; next.ID != "" {
			c.bytes -= recordBytes(next)
			*next = Record{}
		}
	}
	if c.bytes+size > maxBytes {
		return
	}
	*slot = cloneRecord(*rec)
	c.bytes += size
}
