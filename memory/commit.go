package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/memory/internal/kv"
)

type op uint8

const (
	opPut    op = iota
	opFact      // one fact, conditional on the current version's Seq
	opImport    // records keep ID, Recorded and (when possible) Seq
	opBatch     // parts (puts, with or without a key) in one transaction
)

// request is one Put, PutFact or import batch; it commits atomically.
type request struct {
	op       op
	recs     []Record
	expected uint64     // opFact
	skipped  []bool     // opImport: record already stored (same ID)
	idem     string     // opPut: idempotency key, "" for none
	print    []byte     // opPut with idem: the fingerprint of the records as given
	dup      bool       // opPut with idem: a put with the key committed before; recs are its records
	parts    []*request // opBatch
	err      error      // a part's own failure (ErrKeyReused): it stores nothing
	deferred bool       // PutDeferred: may wait Config.CommitDelay for company
	done     chan error
}

// maxGroup bounds how many requests share one commit, so one fsync never
// waits behind an unbounded queue.
const maxGroup = 2048

// commitLoop is the single writer. It takes every request that is waiting,
// assigns Seqs in order, writes them in one badger transaction, and syncs
// once: group commit. Close stops it once no write is in flight.
func (db *DB) commitLoop() {
	defer close(db.stopped)
	batch := make([]*request, 0, 64)
	for {
		batch = batch[:0]
		select {
		case r := <-db.reqs:
			batch = append(batch, r)
		case <-db.stop:
			// Close waited for every submitter; commit what they left.
			for {
				select {
				case r := <-db.reqs:
					db.commit([]*request{r})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxGroup {
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if db.cfg.CommitDelay > 0 && allDeferred(batch) {
			batch = db.gather(batch)
		}
		db.commit(batch)
	}
}

// gather waits up to Config.CommitDelay for more writes to join a batch of
// deferred ones. A write that is not deferred, a full batch or Close ends
// the wait, so only deferred writes ever wait.
func (db *DB) gather(batch []*request) []*request {
	t := db.gatherTimer
	if t == nil {
		t = time.NewTimer(db.cfg.CommitDelay)
		db.gatherTimer = t
	} else {
		t.Reset(db.cfg.CommitDelay) // stopped, and unfired since Go 1.23's timers
	}
	defer t.Stop()
	for len(batch) < maxGroup {
		select {
		case r := <-db.reqs:
			batch = append(batch, r)
			if !r.deferred {
				return batch
			}
		case <-t.C:
			return batch
		case <-db.quit:
			return batch // closing: Close waits for this commit
		}
	}
	return batch
}

func allDeferred(batch []*request) bool {
	for _, r := range batch {
		if !r.deferred {
			return false
		}
	}
	return true
}

// group is what one badger transaction carries.
type group struct {
	txn     *badger.Txn
	reqs    []*request
	entries [][]*badger.Entry // per request, to re-stage into a fresh txn
	recs    []Record
	newNS   map[string]bool
}

func (db *DB) newGroup() *group {
	return &group{txn: db.bdb.NewTransaction(true), newNS: map[string]bool{}}
}

// lastSeq is the Seq the next record of the group follows.
func (g *group) lastSeq(db *DB) uint64 {
	// g.recs holds what every request of g stores, so when it is empty (an
	// import of duplicates only) no request of g has a Seq either.
	if n := len(g.recs); n > 0 {
		return g.recs[n-1].Seq
	}
	return db.lastSeq.Load()
}

func (db *DB) commit(batch []*request) {
	if free, err := freeBytes(db.cfg.Dir); err == nil && free < db.minFree {
		err := fmt.Errorf("%w: %s free in %s, below the %s the store keeps free to write safely (%s); badger writes through memory-mapped files and a write the disk cannot back kills the process, so free some space rather than lower it",
			ErrDiskFull, sizeString(free), db.cfg.Dir, sizeString(db.minFree), db.minWhy)
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	now := time.Now().UTC().Round(0)
	g := db.newGroup()
	for _, r := range batch {
		if r.op == opBatch {
			g = db.addBatch(g, r, now)
			continue
		}
		entries, added, err := db.prepare(g.txn, r, g.lastSeq(db), now, g.newNS)
		if err != nil {
			r.done <- err
			continue
		}
		if err := setAll(g.txn, entries); err != nil {
			// The transaction holds part of r: rebuild it without r.
			g = db.restage(g)
			if !errors.Is(err, badger.ErrTxnTooBig) {
				r.done <- err
				continue
			}
			// r does not fit beside the group: commit the group, then r alone.
			// r was prepared on top of the group, so it fails with it.
			if err := db.finish(g); err != nil {
				r.done <- err
				g = db.newGroup()
				continue
			}
			g = db.newGroup()
			if err := setAll(g.txn, entries); err != nil {
				if errors.Is(err, badger.ErrTxnTooBig) {
					err = fmt.Errorf("%w: %d records do not fit one transaction; put fewer at once", ErrTooLarge, len(r.recs))
				}
				r.done <- err
				g.txn.Discard()
				g = db.newGroup()
				continue
			}
		}
		g.reqs = append(g.reqs, r)
		g.entries = append(g.entries, entries)
		g.recs = append(g.recs, r.visible()...)
		for _, ns := range added {
			g.newNS[ns] = true
		}
	}
	_ = db.finish(g) // its requests have their outcome
}

// restage discards g's transaction and writes the entries of g's requests
// (which fitted before) into a fresh one.
func (db *DB) restage(g *group) *group {
	g.txn.Discard()
	g.txn = db.bdb.NewTransaction(true)
	for i, entries := range g.entries {
		if err := setAll(g.txn, entries); err != nil {
			// Cannot happen (they fitted before); fail the rest rather than lose track.
			for _, r := range g.reqs[i:] {
				r.done <- fmt.Errorf("re-stage: %w", err)
			}
			g.reqs, g.entries = g.reqs[:i], g.entries[:i]
			g.recs = g.recs[:0]
			for _, r := range g.reqs {
				g.recs = append(g.recs, r.visible()...)
			}
			break
		}
	}
	return g
}

// finish commits a group (one fsync) and publishes its records.
func (db *DB) finish(g *group) error {
	if len(g.reqs) == 0 {
		g.txn.Discard()
		return nil
	}
	db.commits.Add(1)
	// Every commit says how far the store reaches; the sequence mark,
	// written once this is synced, must never claim more.
	last := g.lastSeq(db)
	marked := g.txn.SetEntry(badger.NewEntry([]byte(kv.MetaLastSeq), kv.SeqValue(last))) == nil
	start := time.Now()
	err := g.txn.Commit()
	db.observeCommit(g, start, err)
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
		for _, r := range g.reqs {
			r.done <- err
		}
		return err
	}
	if len(g.newNS) > 0 {
		db.nsMu.Lock()
		for ns := range g.newNS {
			db.ns[ns] = struct{}{}
		}
		db.nsMu.Unlock()
	}
	if marked {
		db.writeMark(last)
	}
	if last > db.lastSeq.Load() {
		db.lastSeq.Store(last)
	}
	if len(g.recs) > 0 {
		db.recent.push(g.recs)
		db.notify(g.recs)
	}
	for _, r := range g.reqs {
		r.done <- nil
	}
	return nil
}

func setAll(txn *badger.Txn, entries []*badger.Entry) error {
	for _, e := range entries {
		if err := txn.SetEntry(e); err != nil {
			return err
		}
	}
	return nil
}

// visible returns the records the request stored (imports skip duplicates).
func (r *request) visible() []Record {
	if r.op == opBatch {
		var out []Record
		for _, p := range r.parts {
			if p.err == nil {
				out = append(out, p.visible()...)
			}
		}
		return out
	}
	if r.dup {
		return nil
	}
	if r.skipped == nil {
		return r.recs
	}
	out := make([]Record, 0, len(r.recs))
	for i, rec := range r.recs {
		if !r.skipped[i] {
			out = append(out, rec)
		}
	}
	return out
}

// prepare assigns Seq (and for Put, ID and Recorded) to a request's records
// and returns the badger entries that store them, and the namespaces they
// add. It reads txn for fact versions and duplicate IDs, so it sees what
// earlier requests of the same group staged; it does not write to txn.
func (db *DB) prepare(txn *badger.Txn, r *request, seq uint64, now time.Time, newNS map[string]bool) ([]*badger.Entry, []string, error) {
	var entries []*badger.Entry
	var added []string
	if r.op == opImport {
		r.skipped = make([]bool, len(r.recs))
	}
	if r.idem != "" {
		if dup, err := db.prepareIdem(txn, r); dup || err != nil {
			return nil, nil, err
		}
	}
	for i := range r.recs {
		rec := &r.recs[i]
		var uid ulid.ULID
		switch r.op {
		case opImport:
			var err error
			if uid, err = ulid.ParseStrict(rec.ID); err != nil {
				return nil, nil, fmt.Errorf("%w: record %d: id %q is not a ULID: %v", ErrInvalid, i, rec.ID, err)
			}
			if _, err := lookupID(txn, uid); err == nil {
				r.skipped[i] = true
				continue
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return nil, nil, err
			}
			// Keep the exported Seq when it still sorts after everything stored.
			if rec.Seq <= seq {
				rec.Seq = seq + 1
			}
		default:
			rec.Seq = seq + 1
			uid = newID(now, rec.Seq, uint16(db.entropy.Uint64()))
			rec.ID = uid.String()
			rec.Recorded = now
			if rec.Time.IsZero() {
				rec.Time = rec.Recorded
			}
		}
		rec.Time = rec.Time.UTC().Round(0)
		rec.Recorded = rec.Recorded.UTC().Round(0)
		if !rec.ExpiresAt.IsZero() {
			rec.ExpiresAt = rec.ExpiresAt.UTC().Round(0)
		}
		rec.ValidTo = time.Time{}
		seq = rec.Seq

		val, err := encodeRecord(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: record %d: %v", ErrInvalid, i, err)
		}
		if len(val) > db.cfg.MaxRecordBytes {
			return nil, nil, fmt.Errorf("%w: record %d is %d bytes encoded, the limit is %d (Config.MaxRecordBytes)", ErrTooLarge, i, len(val), db.cfg.MaxRecordBytes)
		}
		var expires uint64
		if !rec.ExpiresAt.IsZero() {
			// badger expiry has one-second resolution: round up, and let Match hide the rest.
			expires = uint64(math.Ceil(float64(rec.ExpiresAt.UnixNano()) / 1e9))
		}
		// A record's keys share one buffer and its entries one array: a turn
		// record has nine, and one allocation for each key and entry was a
		// tenth of a turn's allocations.
		keys := recordKeys{b: make([]byte, 0, rec.keysLen())}
		es := make([]badger.Entry, 0, rec.entryCount())
		entry := func(k, v []byte) {
			es = append(es, badger.Entry{Key: k, Value: v, ExpiresAt: expires})
			entries = append(entries, &es[len(es)-1])
		}

		if rec.Kind == KindFact && rec.Key != "" {
			cur, err := currentFact(txn, rec.Namespace, rec.Key)
			if err != nil {
				return nil, nil, err
			}
			if r.op == opFact && cur != r.expected {
				return nil, nil, fmt.Errorf("%w: fact %s key %q: expected current version seq %d, it is %d (re-read and retry)", ErrConflict, rec.Namespace, rec.Key, r.expected, cur)
			}
			entry(kv.FactKey(rec.Namespace, rec.Key), kv.SeqValue(rec.Seq))
		}
		entry(keys.record(rec.Seq), val)
		if r.op == opImport {
			entry(kv.IDKey(uid), kv.SeqValue(rec.Seq))
		}
		entry(keys.namespace(rec.Namespace, rec.Seq), nil)
		entry(keys.field(rec.Namespace, kv.FieldKind, string(rec.Kind), rec.Seq), nil)
		if rec.Author != "" {
			entry(keys.field(rec.Namespace, kv.FieldAuthor, rec.Author, rec.Seq), nil)
		}
		if rec.Key != "" {
			entry(keys.field(rec.Namespace, kv.FieldKey, rec.Key, rec.Seq), nil)
		}
		for j, t := range rec.Tags {
			if !slices.Contains(rec.Tags[:j], t) {
				entry(keys.field(rec.Namespace, kv.FieldTag, t, rec.Seq), nil)
			}
		}
		if !newNS[rec.Namespace] && !db.hasNamespace(rec.Namespace) && !slices.Contains(added, rec.Namespace) {
			added = append(added, rec.Namespace)
			// The namespace set is not subject to TTL.
			entries = append(entries, badger.NewEntry(kv.NSSetKey(rec.Namespace), nil))
		}
	}
	if r.idem != "" {
		entries = append(entries, idemEntry(r, now))
	}
	return entries, added, nil
}

func (db *DB) hasNamespace(ns string) bool {
	db.nsMu.RLock()
	defer db.nsMu.RUnlock()
	_, ok := db.ns[ns]
	return ok
}

// currentFact returns the Seq of the current version of a fact, 0 if none
// (or it expired).
func currentFact(txn *badger.Txn, ns, key string) (uint64, error) {
	item, err := txn.Get(kv.FactKey(ns, key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = item.Value(func(v []byte) error {
		var err error
		seq, err = kv.Seq(v)
		return err
	})
	return seq, err
}

// recordKeys builds a record's keys in one buffer. Each key is a full
// slice expression of it, so nothing appended to one reaches the next.
type recordKeys struct{ b []byte }

func (k *recordKeys) cut(from int) []byte { return k.b[from:len(k.b):len(k.b)] }

// record is kv.RecordKey.
func (k *recordKeys) record(seq uint64) []byte {
	from := len(k.b)
	k.b = binary.BigEndian.AppendUint64(append(k.b, kv.PrefixRecord), seq)
	return k.cut(from)
}

// namespace is kv.WithSeq(kv.NamespacePrefix(ns), seq).
func (k *recordKeys) namespace(ns string, seq uint64) []byte {
	from := len(k.b)
	k.b = append(append(append(k.b, kv.PrefixNamespace), ns...), 0)
	k.b = binary.BigEndian.AppendUint64(k.b, seq)
	return k.cut(from)
}

// field is kv.WithSeq(kv.FieldPrefix(ns, field, value), seq).
func (k *recordKeys) field(ns string, field byte, value string, seq uint64) []byte {
	from := len(k.b)
	k.b = append(append(k.b, kv.PrefixField), ns...)
	k.b = append(append(append(k.b, 0, field), value...), 0)
	k.b = binary.BigEndian.AppendUint64(k.b, seq)
	return k.cut(from)
}

// keysLen is the bytes of the keys recordKeys builds for r.
func (r *Record) keysLen() int {
	field := func(v string) int { return 1 + len(r.Namespace) + 2 + len(v) + 1 + 8 }
	n := 9 + (1 + len(r.Namespace) + 1 + 8) + field(string(r.Kind))
	if r.Author != "" {
		n += field(r.Author)
	}
	if r.Key != "" {
		n += field(r.Key)
	}
	for _, t := range r.Tags {
		n += field(t)
	}
	return n
}

// entryCount is at most how many entries prepare writes for r.
func (r *Record) entryCount() int { return 7 + len(r.Tags) }
