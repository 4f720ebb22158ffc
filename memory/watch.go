package memory

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"time"
)

// watcher is one Watch's mailbox: whole commit batches, bounded. When it is
// full the committer drops the batch and sets overflow instead of waiting,
// and the watch re-reads from its cursor.
type watcher struct {
	ch       chan []Record
	overflow atomic.Bool
}

// notify hands a committed batch to every watcher without blocking.
func (db *DB) notify(recs []Record) {
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	for w := range db.watchers {
		select {
		case w.ch <- recs:
		default:
			w.overflow.Store(true)
		}
	}
}

// Watch yields every record matching q with Seq > q.AfterSeq in Seq order:
// first the stored ones, then each as it commits, until ctx ends (the
// stream then just ends) or the store closes (it yields ErrClosed). Writers
// never wait for a watcher: one that falls more than Config.WatchBuffer
// commits behind catches up by reading from its cursor.
func (db *DB) Watch(ctx context.Context, q Query) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		q.Limit, q.Ascending = 0, true
		if err := checkQuery(q); err != nil {
			yield(Record{}, fmt.Errorf("memory: watch: %w", err))
			return
		}
		w := &watcher{ch: make(chan []Record, db.cfg.WatchBuffer)}
		// Subscribe before catching up so nothing commits unseen in between.
		db.watchMu.Lock()
		db.watchers[w] = struct{}{}
		db.watchMu.Unlock()
		defer func() {
			db.watchMu.Lock()
			delete(db.watchers, w)
			db.watchMu.Unlock()
		}()

		cursor := q.AfterSeq
		catchUp := func() bool {
			cq := q
			cq.AfterSeq = cursor
			for rec, err := range db.Query(ctx, cq) {
				if err != nil {
					if ctx.Err() == nil {
						yield(Record{}, fmt.Errorf("memory: watch: %w", err))
					}
					return false
				}
				cursor = rec.Seq
				if !yield(rec, nil) {
					return false
				}
			}
			return ctx.Err() == nil
		}
		if !catchUp() {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-db.quit:
				yield(Record{}, fmt.Errorf("memory: watch: %w", ErrClosed))
				return
			case batch := <-w.ch:
				if w.overflow.Swap(false) {
					for len(w.ch) > 0 {
						<-w.ch
					}
					if !catchUp() {
						return
					}
					continue
				}
				now := time.Now()
				for i := range batch {
					rec := &batch[i]
					if rec.Seq <= cursor {
						continue
					}
					cursor = rec.Seq
					if Match(q, rec, now) && !yield(cloneRecord(*rec), nil) {
						return
					}
				}
			}
		}
	}
}
