package recall

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/embed"
	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// watch follows the Source from the cursor, resuming after errors.
func (x *Index) watch(out chan<- memory.Record) {
	defer close(out)
	x.mu.RLock()
	after := x.cursor
	x.mu.RUnlock()
	backoff := 100 * time.Millisecond
	for x.ctx.Err() == nil {
		for rec, err := range x.cfg.Source.Watch(x.ctx, memory.Query{AfterSeq: after}) {
			if err != nil {
				if x.ctx.Err() == nil {
					x.setErr(fmt.Errorf("recall: watch from seq %d: %w", after, err))
				}
				break
			}
			select {
			case out <- rec:
				after = rec.Seq
				backoff = 100 * time.Millisecond
			case <-x.ctx.Done():
				return
			}
		}
		select {
		case <-x.ctx.Done():
		case <-time.After(backoff):
			backoff = min(2*backoff, 10*time.Second)
		}
	}
}

// ingest indexes records in batches of what has arrived, and checkpoints.
func (x *Index) ingest(in <-chan memory.Record) {
	// A second without records means the index has caught up (records
	// that expired unread never arrive).
	quiet := time.NewTimer(time.Second)
	defer quiet.Stop()
	batch := make([]memory.Record, 0, 1024)
	for {
		select {
		case rec, ok := <-in:
			if !ok {
				return
			}
			batch = append(batch[:0], rec)
		drain:
			for len(batch) < cap(batch) {
				select {
				case rec, ok := <-in:
					if !ok {
						break drain
					}
					batch = append(batch, rec)
				default:
					break drain
				}
			}
			vecs, due := x.add(batch)
			// Outside the lock, as checkpoints are: searches need not wait.
			if err := x.write(vecs); err != nil {
				x.setErr(fmt.Errorf("recall: store vectors: %w", err))
			}
			if due {
				x.saveCheckpoint()
			}
			quiet.Reset(time.Second)
		case <-quiet.C:
			x.mu.Lock()
			x.ready = true
			x.mu.Unlock()
			x.saveCheckpoint()
		}
	}
}

func (x *Index) saveCheckpoint() {
	// Only this goroutine moves the cursor, so it is what the checkpoint
	// saves.
	x.mu.RLock()
	cursor := x.cursor
	x.mu.RUnlock()
	if err := x.checkpoint(); err != nil {
		x.setErr(err)
		return
	}
	if err := x.syncGraphs(false); err != nil {
		x.setErr(fmt.Errorf("recall: %w", err))
		return
	}
	x.mu.Lock()
	x.diskFull = false
	if x.dbOpen() {
		x.savedSeq = cursor
	}
	x.mu.Unlock()
}

// add indexes batch. It returns the records' own vectors to store, and
// whether a checkpoint is due.
func (x *Index) add(batch []memory.Record) (vecs []kv, checkpoint bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var newVecs []uint32
	for i := range batch {
		r := &batch[i]
		if r.Seq <= x.cursor {
			continue // a resumed watch may repeat records
		}
		n := uint32(len(x.docs))
		d := doc{
			seq:    r.Seq,
			ns:     x.nss.id(r.Namespace),
			kind:   x.strs.id(string(r.Kind)),
			author: x.strs.id(r.Author),
			key:    x.strs.id(r.Key),
			time:   r.Time.UnixNano(),
			text:   textKey(r.Text),
		}
		if !r.ExpiresAt.IsZero() {
			d.expires = r.ExpiresAt.UnixNano()
		}
		x.setID(n, &d, r.ID)
		x.addTags(&d, r.Tags)
		x.docs = grown(x.docs, d)
		x.supersede(n)
		if err := x.text.Add(n, r.Text); err != nil { // cannot happen: docnums are dense
			x.lastErr = err.Error()
		}
		x.cursor = r.Seq
		if x.emb != nil && embedded(r.Kind) && strings.TrimSpace(r.Text) != "" && x.attachVector(n, r) {
			newVecs = append(newVecs, n)
		}
	}
	x.flushStaged()
	if x.cursor >= x.target {
		x.ready = true
	}
	x.cond.Broadcast()
	return x.vectorKVs(newVecs), len(x.docs)-x.saved >= x.cfg.CheckpointEvery
}

// supersede marks the previous version of fact n as old. Called with x.mu
// held, for documents in order.
func (x *Index) supersede(n uint32) {
	d := &x.docs[n]
	if d.key == 0 || x.strs.strs[d.kind] != string(memory.KindFact) {
		return
	}
	k := factKey{d.ns, d.key}
	if prev, ok := x.facts[k]; ok {
		x.docs[prev].old = true
	}
	x.facts[k] = n
}

// embedded reports whether records of kind get a vector. Audit records are
// kept for accountability and found by filter, not by meaning: embedding
// each one would cost an embeddings call for every policy decision.
func embedded(kind memory.Kind) bool { return kind != memory.KindAudit }

// attachVector gives doc n a vector: the record's own if it is of the
// current model (it reports true: the vector needs saving), else one stored
// before a crash, else it queues an embedding. Called with x.mu held.
func (x *Index) attachVector(n uint32, r *memory.Record) bool {
	model := x.emb.Model()
	if e := r.Embedding; e != nil && e.Model == model {
		if err := x.addVector(n, e.Vector); err == nil {
			return true
		} else {
			x.lastErr = fmt.Sprintf("recall: record %s: %v; embedding its text instead", r.ID, err)
			x.log.Warn("recall: record embedding rejected", "id", r.ID, "err", err)
		}
	} else if n < x.vecsBelow {
		if v, ok := x.storedVector(n, r.ID, model); ok && x.addVector(n, v) == nil {
			return false
		}
	}
	x.pending = append(x.pending, pendingEmbed{doc: n, text: r.Text})
	x.enqueued++
	return false
}

// vectorKVs encodes the vectors of the given documents for storing.
// Called with x.mu held.
func (x *Index) vectorKVs(docs []uint32) []kv {
	if len(docs) == 0 {
		return nil
	}
	kvs := make([]kv, 0, len(docs))
	model := x.emb.Model()
	for _, n := range docs {
		d := &x.docs[n]
		p := x.parts[x.nss.strs[d.ns]]
		p.mu.RLock()
		kvs = append(kvs, kv{docKey(prefVec, n), encodeVector(x.docID(n), model, p.vecAt(d.pos))})
		p.mu.RUnlock()
	}
	return kvs
}

// addVector normalizes v and stages it for doc n's namespace partition;
// flushStaged adds it. Called with x.mu held.
func (x *Index) addVector(n uint32, v []float32) error {
	want := x.emb.Dims()
	if want > 0 && len(v) != want {
		return fmt.Errorf("%w: got %d dimensions, model %s has %d", embed.ErrDims, len(v), x.emb.Model(), want)
	}
	v = slices.Clone(v)
	if !vecscan.Normalize(v) {
		return errors.New("recall: zero or non-finite embedding")
	}
	d := &x.docs[n]
	ns := x.nss.strs[d.ns]
	p := x.parts[ns]
	if p == nil {
		p = &partition{ns: ns, dims: len(v)}
		x.parts[ns] = p
	}
	if len(v) != p.dims {
		return fmt.Errorf("%w: got %d dimensions, namespace %q holds %d", embed.ErrDims, len(v), ns, p.dims)
	}
	p.staged = append(p.staged, staged{n, v})
	d.vec = true
	x.stagedParts[p] = struct{}{}
	return nil
}

// flushStaged moves staged vectors into their partitions, one lock per
// partition: a graph being built holds the partition's read lock for each
// insertion, so per-vector locking would pace ingestion to graph building.
// Called with x.mu held.
func (x *Index) flushStaged() {
	for p := range x.stagedParts {
		p.mu.Lock()
		p.vecs = slices.Grow(p.vecs, len(p.staged)*p.dims)
		p.docs = slices.Grow(p.docs, len(p.staged))
		for _, sv := range p.staged {
			x.docs[sv.doc].pos = p.addLocked(sv.doc, sv.vec)
		}
		p.staged = p.staged[:0]
		p.mu.Unlock()
		x.maybeBuild(p)
	}
	clear(x.stagedParts)
}

func (x *Index) storedVector(n uint32, id, model string) ([]float32, bool) {
	var v []float32
	err := x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(docKey(prefVec, n))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			gotID, gotModel, vec, err := decodeVector(b)
			if err == nil && gotID == id && gotModel == model {
				v = vec
			}
			return err
		})
	})
	return v, err == nil && v != nil
}

// maybeBuild starts building an HNSW graph for p once it outgrows exact scan.
// Called with x.mu held or before the index is shared.
func (x *Index) maybeBuild(p *partition) {
	if x.loading {
		return // Open decides once saved graphs are restored
	}
	p.mu.Lock()
	start := p.graph == nil && !p.building && (len(p.docs) >= x.cfg.ExactBelow || p.resume != nil)
	if start {
		p.building = true
	}
	p.mu.Unlock()
	if start {
		x.wg.Go(func() { p.build(x.ctx, x, x.hcfg) })
	}
}

// embedLoop embeds queued records in batches.
func (x *Index) embedLoop() {
	backoff := time.Second
	for {
		x.mu.Lock()
		for len(x.pending) == 0 && !x.closed {
			x.cond.Wait()
		}
		if x.closed {
			x.mu.Unlock()
			return
		}
		batch := slices.Clone(x.pending[:min(len(x.pending), x.cfg.EmbedBatch)])
		x.pending = x.pending[len(batch):]
		ids := make([]string, len(batch))
		for i, p := range batch {
			ids[i] = x.docID(p.doc)
		}
		x.mu.Unlock()

		texts, keep := x.texts(batch, ids)
		var vecs [][]float32
		var err error
		if len(keep) > 0 {
			vecs, err = x.emb.Embed(x.ctx, texts)
		}
		x.mu.Lock()
		for _, p := range batch {
			if !p.retry {
				x.attempted++
			}
		}
		if err != nil {
			if x.ctx.Err() == nil {
				x.lastErr = fmt.Sprintf("recall: embed %d records with %s: %v", len(keep), x.emb.Model(), err)
				x.log.Error("recall: embed", "model", x.emb.Model(), "records", len(keep), "err", err)
				for _, i := range keep {
					b := batch[i]
					b.retry = true
					x.pending = append(x.pending, b)
				}
			}
			x.cond.Broadcast()
			x.mu.Unlock()
			select {
			case <-x.ctx.Done():
				return
			case <-time.After(backoff):
				backoff = min(2*backoff, time.Minute)
			}
			continue
		}
		backoff = time.Second
		var added []uint32
		for j, i := range keep {
			if err := x.addVector(batch[i].doc, vecs[j]); err != nil {
				x.lastErr = fmt.Sprintf("recall: record %s: %v", ids[i], err)
				x.log.Error("recall: embedding rejected", "id", ids[i], "err", err)
				continue
			}
			added = append(added, batch[i].doc)
		}
		x.flushStaged()
		if err := x.write(x.vectorKVs(added)); err != nil {
			x.lastErr = fmt.Sprintf("recall: store vectors: %v", err)
			x.log.Error("recall: store vectors", "err", err)
		}
		x.cond.Broadcast()
		x.mu.Unlock()
	}
}

// texts returns the texts to embed for batch and the batch positions they
// belong to; texts not carried in the queue are read from the Source, and
// records that are gone or empty are skipped.
func (x *Index) texts(batch []pendingEmbed, ids []string) ([]string, []int) {
	var texts []string
	var keep []int
	for i, p := range batch {
		t := p.text
		if t == "" {
			r, err := x.cfg.Source.Get(x.ctx, ids[i])
			if err != nil {
				continue
			}
			t = r.Text
		}
		if strings.TrimSpace(t) != "" {
			texts = append(texts, t)
			keep = append(keep, i)
		}
	}
	return texts, keep
}
