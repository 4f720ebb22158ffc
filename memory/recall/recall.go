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
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/embed"
	"github.com/depai/depai/memory/recall/internal/bm25"
	"github.com/depai/depai/memory/recall/internal/hnsw"
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
