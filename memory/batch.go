package memory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Write is one part of a PutBatch: records that commit together, with an
// optional idempotency key (see PutOnce).
type Write struct {
	Key  string // idempotency key; "" for none
	Recs []Record
}

// Written is what one Write of a PutBatch did.
type Written struct {
	Recs  []Record // as stored; for a repeated Key, the records its first write stored
	First bool     // false when Key had committed before, so this write stored nothing
	// Err is this write's own failure, which stored nothing of it and left
	// the others alone: ErrKeyReused, or ErrTooLarge for a record over
	// Config.MaxRecordBytes.
	Err error
}

// Check reports whether w is a valid write (see PutBatch), so that a caller
// can refuse it before it commits anything beside it.
func (w Write) Check() error {
	if w.Key != "" {
		if err := checkIdemKey(w.Key); err != nil {
			return err
		}
	}
	if len(w.Recs) == 0 {
		return fmt.Errorf("%w: no records", ErrInvalid)
	}
	now := time.Now()
	for i := range w.Recs {
		if err := checkRecord(&w.Recs[i], now); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
	}
	return nil
}

// Batcher is implemented by stores that commit several writes in one
// transaction. The audit log commits an action's record with the action
// itself this way, so that neither is ever on disk without the other.
type Batcher interface {
	PutBatch(ctx context.Context, writes ...Write) ([]Written, error)
}

var _ Batcher = (*DB)(nil)

// PutBatch commits writes in one transaction and one fsync, in order: their
// records get consecutive Seqs, and once it returns nil they all survive a
// crash. A write whose Key committed before stores nothing and reports the
// records it stored then; a write whose Key was used with other records,
// or with a record too large for the store, stores nothing and reports why
// in its Written.Err — except the first: the batch commits only with it, so
// its failure fails the batch (the audit log's records go first). An
// invalid write fails the batch before anything is stored, and so does any
// failure of the commit.
func (db *DB) PutBatch(ctx context.Context, writes ...Write) ([]Written, error) {
	if len(writes) == 0 {
		return nil, fmt.Errorf("memory: put: %w: no writes", ErrInvalid)
	}
	now := time.Now()
	r := &request{op: opBatch, parts: make([]*request, len(writes))}
	for i, w := range writes {
		if w.Key != "" {
			p, err := newIdemRequest(w.Key, w.Recs, now)
			if err != nil {
				return nil, fmt.Errorf("memory: put: write %d: %w", i, err)
			}
			r.parts[i] = p
			continue
		}
		if len(w.Recs) == 0 {
			return nil, fmt.Errorf("memory: put: write %d: %w: no records", i, ErrInvalid)
		}
		for j := range w.Recs {
			if err := checkRecord(&w.Recs[j], now); err != nil {
				return nil, fmt.Errorf("memory: put: write %d record %d: %w", i, j, err)
			}
		}
		r.parts[i] = &request{op: opPut, recs: append([]Record(nil), w.Recs...)}
	}
	if _, err := db.submit(ctx, r); err != nil {
		return nil, err
	}
	out := make([]Written, len(r.parts))
	for i, p := range r.parts {
		if p.err != nil {
			out[i] = Written{Err: fmt.Errorf("memory: put: %w", p.err)}
			continue
		}
		out[i] = Written{Recs: p.recs, First: !p.dup}
	}
	return out, nil
}

// stageBatch prepares the parts of a batch request on top of g and stages
// them into g's transaction one after the other, so that each part sees
// what the parts before it stage (a key, a fact version). It returns every
// entry staged. On an error g's transaction holds part of r: the caller
// re-stages g without it.
func (db *DB) stageBatch(g *group, r *request, now time.Time) ([]*badger.Entry, []string, error) {
	seq := g.lastSeq(db)
	newNS := maps.Clone(g.newNS)
	var all []*badger.Entry
	var added []string
	for i, p := range r.parts {
		p.err, p.dup = nil, false
		entries, padded, err := db.prepare(g.txn, p, seq, now, newNS)
		if i > 0 && (errors.Is(err, ErrKeyReused) || errors.Is(err, ErrTooLarge)) {
			p.err = err
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if err := setAll(g.txn, entries); err != nil {
			return nil, nil, err
		}
		all = append(all, entries...)
		for _, ns := range padded {
			newNS[ns] = true
		}
		added = append(added, padded...)
		if vis := p.visible(); len(vis) > 0 {
			seq = vis[len(vis)-1].Seq
		}
	}
	return all, added, nil
}

// addBatch adds a batch request to g, committing g first when r does not
// fit beside it, and returns the group to go on with.
func (db *DB) addBatch(g *group, r *request, now time.Time) *group {
	entries, added, err := db.stageBatch(g, r, now)
	if errors.Is(err, badger.ErrTxnTooBig) && len(g.reqs) > 0 {
		g = db.restage(g)
		if err := db.finish(g); err != nil {
			r.done <- err
			return db.newGroup()
		}
		g = db.newGroup()
		entries, added, err = db.stageBatch(g, r, now)
	}
	if err != nil {
		if errors.Is(err, badger.ErrTxnTooBig) {
			err = fmt.Errorf("%w: a batch of %d writes does not fit one transaction; put fewer at once", ErrTooLarge, len(r.parts))
		}
		r.done <- err
		return db.restage(g)
	}
	g.reqs = append(g.reqs, r)
	g.entries = append(g.entries, entries)
	g.recs = append(g.recs, r.visible()...)
	for _, ns := range added {
		g.newNS[ns] = true
	}
	return g
}
