package memory

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/depai/depai/memory/internal/kv"
)

// Query streams matching records. Newest-first queries are served from the
// in-RAM ring of recent records as far as it reaches, then from badger.
// On badger, a query scans one index — Key, else Author, else the first Tag,
// else Kinds, else Namespace, else the log itself — for each namespace under
// q.Namespace, merges them in Seq order and filters the rest. Since/Until
// are filters, not an index: Time is the caller's, not commit order.
func (db *DB) Query(ctx context.Context, q Query) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if err := checkQuery(q); err != nil {
			yield(Record{}, fmt.Errorf("memory: %w", err))
			return
		}
		if !db.enter(&db.reads) {
			yield(Record{}, fmt.Errorf("memory: query: %w", ErrClosed))
			return
		}
		defer db.reads.Done()
		db.query(ctx, q, yield)
	}
}

func (db *DB) query(ctx context.Context, q Query, yield func(Record, error) bool) {
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	now := time.Now()
	n := 0
	emit := func(rec Record) bool {
		if err := annotateFact(txn, &rec); err != nil {
			yield(Record{}, fmt.Errorf("memory: query: %w", err))
			return false
		}
		n++
		return yield(rec, nil) && (q.Limit == 0 || n < q.Limit)
	}
	var hi uint64 // exclusive upper Seq bound; 0: none
	if !q.Ascending {
		recs, floor := db.recent.newestMatching(q.Limit, func(r *Record) bool { return Match(q, r, now) })
		for _, rec := range recs {
			if !emit(rec) {
				return
			}
		}
		if floor <= q.AfterSeq+1 {
			return
		}
		hi = floor
	}
	err := db.scan(ctx, txn, q, hi, now, emit)
	if err != nil {
		yield(Record{}, fmt.Errorf("memory: query: %w", err))
	}
}

// cursor is one index iterator of a merged scan.
type cursor struct {
	it     *badger.Iterator
	seq    uint64
	record bool // the iterator is over the log itself: its values are records
}

type cursors struct {
	c   []*cursor
	asc bool
}

func (h *cursors) Len() int { return len(h.c) }
func (h *cursors) Less(i, j int) bool {
	if h.asc {
		return h.c[i].seq < h.c[j].seq
	}
	return h.c[i].seq > h.c[j].seq
}
func (h *cursors) Swap(i, j int) { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *cursors) Push(x any)    { h.c = append(h.c, x.(*cursor)) }
func (h *cursors) Pop() any {
	c := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return c
}

// scan reads records with q.AfterSeq < Seq < hi (hi 0: unbounded) from
// badger in q's order and emits those matching q until emit returns false.
func (db *DB) scan(ctx context.Context, txn *badger.Txn, q Query, hi uint64, now time.Time, emit func(Record) bool) error {
	prefixes, record := db.plan(q)
	h := &cursors{asc: q.Ascending}
	defer func() {
		for _, c := range h.c {
			c.it.Close()
		}
	}()
	lo := q.AfterSeq
	for _, p := range prefixes {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, Reverse: !q.Ascending, PrefetchValues: false})
		switch {
		case q.Ascending:
			it.Seek(kv.WithSeq(p, lo+1))
		case hi == 0:
			it.Seek(kv.WithSeq(p, math.MaxUint64))
		default:
			it.Seek(kv.WithSeq(p, hi-1))
		}
		c := &cursor{it: it, record: record}
		if !c.load() {
			it.Close()
			continue
		}
		h.c = append(h.c, c)
	}
	heap.Init(h)
	for i := 0; h.Len() > 0; i++ {
		if i%256 == 255 {
			if err := ctx.Err(); err != nil {
				return err
			}
			select {
			case <-db.quit:
				return ErrClosed
			default:
			}
		}
		c := h.c[0]
		seq := c.seq
		if q.Ascending && hi != 0 && seq >= hi || !q.Ascending && seq <= lo {
			// Every other cursor is further out of range.
			return nil
		}
		var rec Record
		var err error
		if c.record {
			err = c.it.Item().Value(func(v []byte) error {
				rec, err = decodeRecord(seq, v)
				return err
			})
		} else {
			rec, err = readRecord(txn, seq)
		}
		if c.it.Next(); c.load() {
			heap.Fix(h, 0)
		} else {
			c.it.Close()
			heap.Pop(h)
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue // expired between index and record
		}
		if err != nil {
			return err
		}
		if Match(q, &rec, now) && !emit(rec) {
			return nil
		}
	}
	return nil
}

// load reads the cursor's current Seq; false when it is exhausted.
func (c *cursor) load() bool {
	if !c.it.Valid() {
		return false
	}
	seq, err := kv.SeqSuffix(c.it.Item().Key())
	if err != nil {
		return false
	}
	c.seq = seq
	return true
}

// plan picks the index prefixes a query scans; record reports that they
// are the log itself.
func (db *DB) plan(q Query) (prefixes [][]byte, record bool) {
	if q.Namespace == "" && q.Key == "" && q.Author == "" && len(q.Tags) == 0 && len(q.Kinds) == 0 {
		return [][]byte{{kv.PrefixRecord}}, true
	}
	// Duplicate kinds would scan the same index twice.
	kinds := slices.Compact(slices.Sorted(slices.Values(q.Kinds)))
	for _, ns := range db.namespaces(q.Namespace) {
		switch {
		case q.Key != "":
			prefixes = append(prefixes, kv.FieldPrefix(ns, kv.FieldKey, q.Key))
		case q.Author != "":
			prefixes = append(prefixes, kv.FieldPrefix(ns, kv.FieldAuthor, q.Author))
		case len(q.Tags) > 0:
			prefixes = append(prefixes, kv.FieldPrefix(ns, kv.FieldTag, q.Tags[0]))
		case len(q.Kinds) > 0:
			for _, k := range kinds {
				prefixes = append(prefixes, kv.FieldPrefix(ns, kv.FieldKind, string(k)))
			}
		default:
			prefixes = append(prefixes, kv.NamespacePrefix(ns))
		}
	}
	return prefixes, false
}

// namespaces returns the stored namespaces within under ("" is all), in no
// particular order: a scan merges its cursors by Seq.
func (db *DB) namespaces(under string) []string {
	db.nsMu.RLock()
	defer db.nsMu.RUnlock()
	var out []string
	for ns := range db.ns {
		if under == "" || Within(ns, under) {
			out = append(out, ns)
		}
	}
	return out
}

// Namespaces returns every namespace that holds or held a record, sorted.
func (db *DB) Namespaces() []string {
	out := db.namespaces("")
	slices.Sort(out)
	return out
}

// annotateFact sets ValidTo on a fact that a newer version superseded.
func annotateFact(txn *badger.Txn, rec *Record) error {
	if rec.Kind != KindFact || rec.Key == "" {
		return nil
	}
	cur, err := currentFact(txn, rec.Namespace, rec.Key)
	if err != nil || cur == rec.Seq {
		return err
	}
	p := kv.FieldPrefix(rec.Namespace, kv.FieldKey, rec.Key)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
	defer it.Close()
	for it.Seek(kv.WithSeq(p, rec.Seq+1)); it.Valid(); it.Next() {
		seq, err := kv.SeqSuffix(it.Item().Key())
		if err != nil {
			return err
		}
		next, err := readRecord(txn, seq)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if next.Kind == KindFact {
			rec.ValidTo = next.Time
			return nil
		}
	}
	return nil
}
