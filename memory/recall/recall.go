// Package recall is hybrid search over memory: BM25 over record text and
// cosine similarity over embeddings, fused by reciprocal rank fusion, with
// the memory.Query filters (namespace, kind, author, tags, key, time)
// applied before ranking.
//
// An Index consumes the record log of any memory.Store that is also a
// memory.Watcher: it catches up from its persisted cursor and then follows
// new records as they commit. Records without a usable embedding are
// embedded in the background through an embed.Embedder; with none
// configured, recall is BM25 alone and Mode says so.
//
// What is persisted under Config.Dir (its own badger) and what is rebuilt:
//   - persisted: the cursor, the document table (ids and filter fields),
//     the BM25 postings in blocks of 4096 documents (a checkpoint rewrites
//     only changed blocks), and every vector as raw little-endian float32
//     with its model and dimensions;
//   - saved by Close, when it changed since it was loaded: each namespace's
//     HNSW graph (links only, by document number), so a clean restart loads
//     it instead of rebuilding it;
//   - rebuilt on open: the vector partitions, from their stored vectors;
//     and, after a crash or for a namespace newly above Config.ExactBelow,
//     the HNSW graph, in the background; until it is ready that namespace
//     is searched by exact scan, so results are never missing.
//
// Records committed after the last checkpoint are read again from the Store.
package recall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/embed"
	"github.com/depai/depai/memory/recall/internal/bm25"
	"github.com/depai/depai/memory/recall/internal/hnsw"
	"github.com/depai/depai/memory/recall/internal/rrf"
	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// Source is the record log an Index follows.
type Source interface {
	memory.Store
	memory.Watcher
}

// Config configures Open. Source and Dir are required.
type Config struct {
	Source   Source
	Dir      string         // the index's own data directory, created if missing
	Embedder embed.Embedder // nil: BM25 only
	Logger   *slog.Logger   // nil: discard
	// ExactBelow is the number of vectors in one namespace below which it is
	// searched by exact scan; above it an HNSW graph is built. 0: 30000.
	ExactBelow int
	// CheckpointEvery is how many new records trigger a checkpoint of the
	// postings and document table; one also happens on Close and after a
	// second of quiet. 0: 20000.
	CheckpointEvery int
	// EmbedBatch is how many texts go to the Embedder at once. 0: 64.
	EmbedBatch int
	// EfSearch is the HNSW candidate list size: higher is more exact and
	// slower. 0: 64 (recall@10 0.999 on clustered synthetic 384-d vectors
	// at 200k per namespace; the hnsw benchmark logs the trade-off).
	EfSearch int
}

// Query is a recall request.
//
// Superseded versions of a fact are not recalled; memory.Facts.History
// lists them.
type Query struct {
	Text   string       // required
	Filter memory.Query // applied first; Limit and Ascending must be zero (use K)
	// Within, when set, limits hits to these namespaces and those below
	// them (any of), on top of Filter: an agent passes the namespaces its
	// config grants it.
	Within []string
	K      int // hits wanted; 0: 10, at most 1000
}

// Hit is one recalled record. Score is the fused RRF score; the ranks are
// 1-based positions in the BM25 and vector rankings, 0 when the record was
// not in that ranking.
type Hit struct {
	Record     memory.Record
	Score      float64
	BM25Rank   int
	VectorRank int
}

// Stats describes an Index.
type Stats struct {
	Docs          int    // records indexed
	Vectors       int    // records with a vector of the current model
	PendingEmbeds int    // records waiting to be embedded
	Cursor        uint64 // Seq of the last record indexed
	Graphs        int    // namespaces searched through an HNSW graph
	LastError     string // the most recent background error, "" if none
}

// Index is a hybrid recall index. It is safe for concurrent use.
type Index struct {
	cfg  Config
	log  *slog.Logger
	db   *badger.DB
	emb  embed.Embedder
	hcfg hnsw.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.RWMutex // guards everything below, and the partitions' membership
	cond        *sync.Cond   // signalled when cursor, embedded or pending change
	docs        []doc
	text        *bm25.Index
	parts       map[string]*partition // by exact namespace
	facts       map[factKey]uint32    // current version of each fact
	stagedParts map[*partition]struct{}
	loading     bool     // during load: no graph builds yet
	nss         interner // namespaces; kept apart so a search's namespace filter scans only these
	strs        interner // kinds, authors, keys, tags
	vecsBelow   uint32   // documents from the last checkpoint up to here may have a vector stored before a crash
	cursor      uint64   // Seq of the last record in docs
	saved       int      // docs[:saved] are checkpointed
	pending     []pendingEmbed
	enqueued    uint64 // embeddings ever queued (first attempts)
	attempted   uint64 // of those, attempted at least once
	lastErr     string
	closed      bool
}

type doc struct {
	seq     uint64
	id      string
	ns      uint32 // interned in nss
	kind    uint32 // interned in strs, as are author, key and tags
	author  uint32
	key     uint32
	tags    []uint32
	time    int64 // unix nanoseconds
	expires int64 // unix nanoseconds; 0: never
	vec     bool  // has a vector of the current model, at pos in its partition
	pos     uint32
	old     bool // a fact superseded by a newer version (same namespace and key)
}

type factKey struct{ ns, key uint32 }

type pendingEmbed struct {
	doc   uint32
	text  string // "" : read it from the Source
	retry bool   // queued again after a failure
}

// interner maps strings to small integers; 0 is the empty string.
type interner struct {
	ids  map[string]uint32
	strs []string
}

func (in *interner) id(s string) uint32 {
	if in.ids == nil {
		in.ids = map[string]uint32{"": 0}
		in.strs = []string{""}
	}
	if id, ok := in.ids[s]; ok {
		return id
	}
	id := uint32(len(in.strs))
	in.ids[s] = id
	in.strs = append(in.strs, s)
	return id
}

func (in *interner) lookup(s string) (uint32, bool) {
	id, ok := in.ids[s]
	return id, ok
}

// Key prefixes in the index's badger.
var (
	keyCursor = []byte("m/cursor") // cursor u64, saved docs u64
	keyModel  = []byte("m/model")  // model name of the stored vectors
	prefDoc   = []byte("d/")       // + docnum BE32 -> doc
	prefPost  = []byte("p/")       // + term + 0 + block BE32 -> postings block
	prefVec   = []byte("v/")       // + docnum BE32 -> id, model, dims, float32 LE
	// + namespace + 0 + chunk BE32 -> a piece of a saved HNSW graph
	prefGraph     = []byte("g/")
	prefGraphMeta = []byte("gm/") // + namespace -> number of chunks BE32
)

// valueThreshold is the index badger's value threshold: values below it are
// kept in the LSM tree, so the index needs no value-log GC.
const valueThreshold = 1 << 20

// Open opens or creates the index in cfg.Dir, loads what it persisted, and
// starts following cfg.Source from its cursor.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if cfg.Source == nil {
		return nil, errors.New("recall: open: Config.Source is nil; want a memory store that is also a memory.Watcher")
	}
	if cfg.Dir == "" {
		return nil, errors.New("recall: open: Config.Dir is empty; want the index's data directory")
	}
	if cfg.ExactBelow < 0 || cfg.CheckpointEvery < 0 || cfg.EmbedBatch < 0 || cfg.EfSearch < 0 {
		return nil, fmt.Errorf("recall: open %s: ExactBelow %d, CheckpointEvery %d, EmbedBatch %d, EfSearch %d: want 0 (default) or positive values",
			cfg.Dir, cfg.ExactBelow, cfg.CheckpointEvery, cfg.EmbedBatch, cfg.EfSearch)
	}
	if cfg.ExactBelow == 0 {
		cfg.ExactBelow = 30000
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 20000
	}
	if cfg.EmbedBatch == 0 {
		cfg.EmbedBatch = 64
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := badger.DefaultOptions(cfg.Dir).
		WithLogger(nil).
		WithSyncWrites(false). // derived data: after a crash it is rebuilt from the Store
		WithMetricsEnabled(false).
		WithCompression(options.Snappy).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueThreshold(valueThreshold)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("recall: open %s: %w (if it is corrupt, remove it: the index is rebuilt from the store)", cfg.Dir, err)
	}
	x := &Index{
		cfg:   cfg,
		log:   log,
		db:    db,
		emb:   cfg.Embedder,
		hcfg:  hnsw.Config{EfSearch: cfg.EfSearch},
		text:  bm25.New(),
		parts: map[string]*partition{},
		facts: map[factKey]uint32{},

		stagedParts: map[*partition]struct{}{},
	}
	x.cond = sync.NewCond(&x.mu)
	x.ctx, x.cancel = context.WithCancel(context.Background())
	x.loading = true
	err = x.load(ctx)
	x.loading = false
	if err != nil {
		x.cancel()
		x.wg.Wait()
		db.Close()
		return nil, fmt.Errorf("recall: open %s: %w (the index is derived from the store: remove the directory to rebuild it)", cfg.Dir, err)
	}
	// Before ingest starts: it adds to x.parts.
	for _, p := range x.parts {
		x.maybeBuild(p)
	}
	recs := make(chan memory.Record, 4096)
	x.wg.Go(func() { x.watch(recs) })
	x.wg.Go(func() { x.ingest(recs) })
	if x.emb != nil {
		x.wg.Go(x.embedLoop)
	}
	return x, nil
}

// Mode says how recall ranks, for /status, e.g. "hybrid: bm25 +
// text-embedding-3-small (384d)" or "bm25 only (no embeddings endpoint
// configured)"; while records wait for embeddings it says how many.
func (x *Index) Mode() string {
	if x.emb == nil {
		return "bm25 only (no embeddings endpoint configured)"
	}
	dims := "dimensions not yet known"
	if d := x.emb.Dims(); d > 0 {
		dims = fmt.Sprintf("%dd", d)
	}
	mode := fmt.Sprintf("hybrid: bm25 + %s (%s)", x.emb.Model(), dims)
	x.mu.RLock()
	pending := len(x.pending)
	x.mu.RUnlock()
	if pending > 0 {
		mode += fmt.Sprintf("; %d records waiting for embeddings", pending)
	}
	return mode
}

// Stats returns counters for /status and tests.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := Stats{Docs: len(x.docs), PendingEmbeds: len(x.pending), Cursor: x.cursor, LastError: x.lastErr}
	for _, p := range x.parts {
		p.mu.RLock()
		s.Vectors += len(p.docs)
		if p.graph != nil {
			s.Graphs++
		}
		p.mu.RUnlock()
	}
	return s
}

// Sync waits until every record committed to the Source before the call is
// indexed, and each one that needs an embedding has been tried once.
// Records that expire before the index reads them are not waited for.
func (x *Index) Sync(ctx context.Context) error {
	target := x.cfg.Source.LastSeq()
	for {
		x.mu.Lock()
		cur, closed, embedding := x.cursor, x.closed, x.attempted < x.enqueued
		x.mu.Unlock()
		switch {
		case closed:
			return errors.New("recall: sync: index closed")
		case cur >= target && !embedding:
			return nil
		case cur < target && !x.unread(ctx, cur, target):
			target = cur
			continue
		}
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("recall: sync to seq %d (at %d): %w", target, cur, ctx.Err())
		case <-t.C:
		}
	}
}

// unread reports whether the Source still holds a record in (after, upto].
func (x *Index) unread(ctx context.Context, after, upto uint64) bool {
	for rec, err := range x.cfg.Source.Query(ctx, memory.Query{AfterSeq: after, Ascending: true, Limit: 1}) {
		return err != nil || rec.Seq <= upto
	}
	return false
}

// Close stops following the Source, checkpoints, and closes the index.
func (x *Index) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	x.closed = true
	x.cond.Broadcast()
	x.mu.Unlock()
	x.cancel()
	x.wg.Wait()
	err := x.checkpoint()
	if err == nil && x.emb != nil {
		x.mu.Lock()
		err = x.saveGraphs()
		x.mu.Unlock()
	}
	if cerr := x.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("recall: close %s: %w", x.cfg.Dir, err)
	}
	return nil
}

func (x *Index) setErr(err error) {
	x.log.Error("recall", "err", err)
	x.mu.Lock()
	x.lastErr = err.Error()
	x.mu.Unlock()
}

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
	quiet := time.NewTimer(time.Hour)
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
			x.saveCheckpoint()
		}
	}
}

func (x *Index) saveCheckpoint() {
	if err := x.checkpoint(); err != nil {
		x.setErr(err)
	}
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
			id:     r.ID,
			ns:     x.nss.id(r.Namespace),
			kind:   x.strs.id(string(r.Kind)),
			author: x.strs.id(r.Author),
			key:    x.strs.id(r.Key),
			time:   r.Time.UnixNano(),
		}
		if !r.ExpiresAt.IsZero() {
			d.expires = r.ExpiresAt.UnixNano()
		}
		for _, t := range r.Tags {
			d.tags = append(d.tags, x.strs.id(t))
		}
		x.docs = append(x.docs, d)
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
		kvs = append(kvs, kv{docKey(prefVec, n), encodeVector(d.id, model, p.vecAt(d.pos))})
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
		p = &partition{dims: len(v)}
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
	start := p.graph == nil && !p.building && len(p.docs) >= x.cfg.ExactBelow
	if start {
		p.building = true
	}
	p.mu.Unlock()
	if start {
		x.wg.Go(func() { p.build(x.ctx, x.hcfg) })
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
			ids[i] = x.docs[p.doc].id
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

// Search returns up to q.K records matching q.Filter, ranked by BM25 and
// vector similarity fused with RRF.
func (x *Index) Search(ctx context.Context, q Query) ([]Hit, error) {
	if strings.TrimSpace(q.Text) == "" {
		return nil, errors.New("recall: search: Query.Text is empty; to list records by filter alone use memory.Store.Query")
	}
	if q.Filter.Limit != 0 || q.Filter.Ascending {
		return nil, fmt.Errorf("recall: search: Query.Filter.Limit %d / Ascending %v: not used by recall; set Query.K", q.Filter.Limit, q.Filter.Ascending)
	}
	if q.K < 0 || q.K > 1000 {
		return nil, fmt.Errorf("recall: search: Query.K %d: want 0 (default 10) to 1000", q.K)
	}
	if q.K == 0 {
		q.K = 10
	}
	depth := max(4*q.K, 40)

	var qv []float32
	if x.emb != nil {
		vs, err := x.emb.Embed(ctx, []string{q.Text})
		if err == nil && len(vs) == 1 {
			qv = slices.Clone(vs[0])
			if !vecscan.Normalize(qv) {
				qv = nil
			}
		} else if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("recall: search: %w", ctx.Err())
			}
			x.setErr(fmt.Errorf("recall: embed query (ranking by BM25 alone): %w", err))
		}
	}

	x.mu.RLock()
	if x.closed { // Close relabels the graphs it saves: they cannot be searched
		x.mu.RUnlock()
		return nil, errors.New("recall: search: index closed")
	}
	keep, nsOK := x.filter(q.Filter, q.Within, time.Now())
	lex := x.text.Search(bm25.ParseQuery(q.Text), depth, keep)
	var sem []vecscan.Result
	if qv != nil {
		sem = x.searchVectors(qv, nsOK, depth, keep)
	}
	lists := [][]uint32{ids(lex), ids(sem)}
	fused := rrf.Fuse(lists...)
	type cand struct {
		f  rrf.Fused
		id string
	}
	cands := make([]cand, len(fused))
	for i, f := range fused {
		cands[i] = cand{f, x.docs[f.ID].id}
	}
	x.mu.RUnlock()

	hits := make([]Hit, 0, q.K)
	for _, c := range cands {
		if len(hits) == q.K {
			break
		}
		rec, err := x.cfg.Source.Get(ctx, c.id)
		if errors.Is(err, memory.ErrNotFound) {
			continue // expired or gone since it was indexed
		}
		if err != nil {
			return nil, fmt.Errorf("recall: search: get %s: %w", c.id, err)
		}
		hits = append(hits, Hit{Record: rec, Score: c.f.Score, BM25Rank: c.f.Ranks[0], VectorRank: c.f.Ranks[1]})
	}
	return hits, nil
}

func ids(rs []vecscan.Result) []uint32 {
	out := make([]uint32, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// searchVectors searches every partition whose namespace nsOK admits (nil:
// all). Called with x.mu held.
func (x *Index) searchVectors(q []float32, nsOK []bool, k int, keep func(uint32) bool) []vecscan.Result {
	top := vecscan.NewTopK(k)
	for ns, p := range x.parts {
		if nsOK != nil && !nsOK[x.nss.ids[ns]] {
			continue
		}
		for _, r := range p.search(q, k, keep, x.hcfg.EfSearch) {
			top.Push(r.ID, r.Score)
		}
	}
	return top.Sorted()
}

// filter compiles f and within into a predicate on document numbers, and
// the namespaces they admit by interned ID (nil: all). Called with x.mu held.
func (x *Index) filter(f memory.Query, within []string, now time.Time) (keep func(uint32) bool, nsOK []bool) {
	nowNs := now.UnixNano()
	if f.Namespace != "" || len(within) > 0 {
		nsOK = make([]bool, len(x.nss.strs))
		for id, s := range x.nss.strs {
			ok := s != "" && (f.Namespace == "" || memory.Within(s, f.Namespace))
			if ok && len(within) > 0 {
				ok = slices.ContainsFunc(within, func(w string) bool { return w != "" && memory.Within(s, w) })
			}
			nsOK[id] = ok
		}
	}
	var kinds []uint32
	for _, k := range f.Kinds {
		if id, ok := x.strs.lookup(string(k)); ok {
			kinds = append(kinds, id)
		}
	}
	none := func(uint32) bool { return false }
	if len(f.Kinds) > 0 && len(kinds) == 0 {
		return none, nsOK
	}
	exact := func(s string) (uint32, bool) {
		if s == "" {
			return 0, true
		}
		return x.strs.lookup(s)
	}
	author, ok1 := exact(f.Author)
	key, ok2 := exact(f.Key)
	tags := make([]uint32, 0, len(f.Tags))
	ok3 := true
	for _, t := range f.Tags {
		id, ok := x.strs.lookup(t)
		ok3 = ok3 && ok
		tags = append(tags, id)
	}
	if !ok1 || !ok2 || !ok3 {
		return none, nsOK
	}
	var since, until int64 = math.MinInt64, math.MaxInt64
	if !f.Since.IsZero() {
		since = f.Since.UnixNano()
	}
	if !f.Until.IsZero() {
		until = f.Until.UnixNano()
	}
	docs := x.docs
	return func(n uint32) bool {
		d := &docs[n]
		switch {
		case d.old,
			d.expires != 0 && d.expires <= nowNs,
			nsOK != nil && !nsOK[d.ns],
			f.Author != "" && d.author != author,
			f.Key != "" && d.key != key,
			d.time < since || d.time >= until,
			d.seq <= f.AfterSeq:
			return false
		}
		if len(kinds) > 0 && !slices.Contains(kinds, d.kind) {
			return false
		}
		for _, t := range tags {
			if !slices.Contains(d.tags, t) {
				return false
			}
		}
		return true
	}, nsOK
}
