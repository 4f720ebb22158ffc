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
//   - in files of their own beside it (graphfile.go): each namespace's HNSW
//     graph (links only, by document number) as a checksummed snapshot and
//     a log of the insertions since, flushed at every checkpoint; a
//     snapshot replaces the log once it holds a quarter of the graph, and
//     at Close. A restart — clean or after kill -9 — loads both and links
//     only the vectors the graph lacks (in the background if many, like a
//     build); a damaged snapshot means a rebuild;
//   - rebuilt on open: the vector partitions, from their stored vectors;
//     and, for a namespace newly above Config.ExactBelow or whose graph
//     files are unusable, the HNSW graph, in the background; until it is
//     ready that namespace is searched by exact scan, so results are never
//     missing.
//
// Records committed after the last checkpoint are read again from the Store.
//
// Open returns at once; the index loads in the background (Stats.Phase,
// Progress, Ready), and Search ranks the newest records of the Store by
// BM25 until it is ready. The index is derived data: a directory that is
// damaged (tables are checked before badger reads them), missing files or
// of another format version is removed and rebuilt from the Store, never
// an error and never a crash. Saving stops while Dir has less than
// Config.MinFreeBytes free (badger writes through mapped files, and a full
// disk would kill the process with SIGBUS); the index keeps indexing in RAM
// and saves once there is room.
//
// Lock order: Index.mu before a partition's mu, never the reverse; a
// graph build holds only its partition's read lock. Index.dbMu is a leaf,
// taken under Index.mu (checkpoint, the embed loop's writes) and holding
// nothing else. Searches hold Index.mu
// shared and fetch records from the Store after releasing it. The start
// goroutine owns the index state until it sets loaded under Index.mu.
package recall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/dgraph-io/badger/v4"
	"github.com/oklog/ulid/v2"

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
	// MinFreeBytes is the free space in Dir below which the index stops
	// saving (it keeps indexing in RAM, and saves once there is room):
	// badger writes through memory-mapped files, and a write the disk
	// cannot back kills the process with SIGBUS. 0: 96 MiB (the index's
	// two memtables, their write-ahead logs and a margin).
	MinFreeBytes int64
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
	// Distinct counts records that read alike — the same text, kind and
	// namespace — once, as the best-ranked of them (of equal scores, the
	// newest), and does not read the copies from the Source: a memory
	// stored a few times does not crowd out the others. Each ranking gives
	// at most max(4×K, 40) candidates, so copies beyond that still can.
	Distinct bool
	// Floor, when above 0 (at most 1), leaves out the records whose BM25
	// score is below Floor times the best one's, unless the vector ranking
	// finds them: a record that shares with the query only a word most
	// records have ("ping" in every turn) is not recalled beside the ones
	// that share its rare words. 0 keeps every match.
	Floor float64
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
	// Saved is the Seq of the last record whose document and graph
	// insertions the index's directory holds, as of the last checkpoint
	// (0: none yet); a restart reads the records after it from the Source.
	Saved     uint64
	Graphs    int    // namespaces searched through an HNSW graph
	LastError string // the most recent background error, "" if none
	// Ready is set once the index has loaded what it saved and caught up
	// with the records the Source held when it opened. Until then Search
	// ranks the newest matching records by BM25 (see Search).
	Ready bool
	// Phase is "loading", "rebuilding" (the saved index was damaged,
	// missing or of another version), "catching up", "ready" or
	// "unavailable" (the index directory cannot be used; Search falls back).
	Phase string
	// Progress is how far the current phase is, from 0 to 1.
	Progress float64
}

// Index is a hybrid recall index. It is safe for concurrent use.
type Index struct {
	cfg Config
	log *slog.Logger
	// db is the index's badger. An index whose directory was empty at Open
	// opens it only once it has something worth saving (openDB, under
	// dbMu); until then db is nil and dbLazy is set, and a restart reads
	// those few records from the Source again — cheaper than the open,
	// which costs a start its memtable and files.
	dbMu   sync.Mutex
	db     *badger.DB
	dbLazy bool
	emb    embed.Embedder
	hcfg   hnsw.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.RWMutex // guards everything below, and the partitions' membership
	cond        *sync.Cond   // signalled when cursor, embedded or pending change
	docs        []doc
	tagHashes   []uint32          // the documents' tags, by fnv32
	odd         map[uint32]string // IDs that are not canonical ULIDs, by document number
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
	savedSeq    uint64   // Stats.Saved
	pending     []pendingEmbed
	enqueued    uint64 // embeddings ever queued (first attempts)
	attempted   uint64 // of those, attempted at least once
	lastErr     string
	diskFull    bool // the last save was refused for lack of space
	closed      bool

	// Open returns before the index is loaded: start loads it and then
	// starts following the Source. Until loaded is set (under mu), the
	// fields above belong to start alone, and readers look only at these.
	started   chan struct{} // closed when start has finished
	loaded    bool          // guarded by mu
	ready     bool          // guarded by mu: loaded and caught up with target
	broken    bool          // guarded by mu: the directory is unusable; fallback search only
	rebuild   bool          // guarded by mu: the load found damage and started over
	target    uint64        // the Source's LastSeq at Open
	loadDone  atomic.Int64  // documents loaded so far
	loadTotal atomic.Int64  // documents to load
}

// doc is what a search filters on, per document, kept small: it is the
// part of the index that grows with every record. The record ID is held as
// its 16 ULID bytes (see Index.docID), and tags as hashes in Index.tagHashes
// (fnv32): a tag unique to one record, as a turn's own tag is, would
// otherwise stay interned for good.
type doc struct {
	seq     uint64
	uid     [16]byte // the record ID, parsed; see Index.odd
	time    int64    // unix nanoseconds
	expires int64    // unix nanoseconds; 0: never
	ns      uint32   // interned in nss
	kind    uint32   // interned in strs, as are author and key
	author  uint32
	key     uint32
	tag0    uint32 // tagHashes[tag0 : tag0+ntags]
	pos     uint32
	text    uint32 // textKey of the record's text; 0: not known (saved by an older build)
	ntags   uint16
	vec     bool // has a vector of the current model, at pos in its partition
	old     bool // a fact superseded by a newer version (same namespace and key)
}

type factKey struct{ ns, key uint32 }

type pendingEmbed struct {
	doc   uint32
	text  string // "" : read it from the Source
	retry bool   // queued again after a failure
}

// setID stores id as d's ID: its ULID bytes, or, for an ID that is not a
// canonical (upper-case) ULID, in x.odd. Called with x.mu held.
func (x *Index) setID(n uint32, d *doc, id string) {
	if u, err := ulid.ParseStrict(id); err == nil && !strings.ContainsFunc(id, unicode.IsLower) {
		d.uid = u
		return
	}
	if x.odd == nil {
		x.odd = map[uint32]string{}
	}
	x.odd[n] = id
}

// docID is the record ID of document n. Called with x.mu held.
func (x *Index) docID(n uint32) string {
	if id, ok := x.odd[n]; ok {
		return id
	}
	return ulid.ULID(x.docs[n].uid).String()
}

// addTags appends the hashes of tags for d. Called with x.mu held.
func (x *Index) addTags(d *doc, tags []string) {
	d.tag0, d.ntags = uint32(len(x.tagHashes)), uint16(min(len(tags), math.MaxUint16))
	for _, t := range tags[:d.ntags] {
		x.tagHashes = grown(x.tagHashes, fnv32(t))
	}
}

// grown appends v to s, growing a full s by an eighth (at least 64) where
// append grows it by a quarter: the document table and the tag hashes grow
// with every record and are most of the index's heap, and append's slack
// was a fifth of them (TurnFootprint: 12.3k document slots for 10.1k
// documents). Reallocations copy some 9 times the final length, not 5.
func grown[T any](s []T, v T) []T {
	if len(s) == cap(s) {
		t := make([]T, len(s), len(s)+max(len(s)/8, 64))
		copy(t, s)
		s = t
	}
	return append(s, v)
}

// textKey is what Query.Distinct compares before it reads a record: fnv32
// of its text, never 0, which marks a document whose key is not known.
func textKey(text string) uint32 { return max(fnv32(text), 1) }

func (x *Index) tagsOf(d *doc) []uint32 { return x.tagHashes[d.tag0 : d.tag0+uint32(d.ntags)] }

// fnv32 is FNV-1a, 32 bits: stable across restarts, as the saved index
// needs, and 4 bytes a tag or text. Search checks the tags of what it
// returns on the record itself, so a collision never lets a record through
// a tag filter; it only costs a fetch (about one in 10^9 documents a query
// tag).
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
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
	keyFormat = []byte("m/format") // formatVersion
	prefDoc   = []byte("d/")       // + docnum BE32 -> doc
	prefPost  = []byte("p/")       // + term + 0 + block BE32 -> postings block
	prefVec   = []byte("v/")       // + docnum BE32 -> id, model, dims, float32 LE
	// Graphs saved by earlier versions, removed on load (dropBadgerGraphs):
	// + namespace + 0 + chunk BE32 -> a piece of a saved HNSW graph
	prefGraph     = []byte("g/")
	prefGraphMeta = []byte("gm/") // + namespace -> number of chunks BE32
)

// valueThreshold is the index badger's value threshold: values below it are
// kept in the LSM tree, so the index needs no value-log GC. badger wants
// it within a write batch (15% of the 4 MiB memtable); every value the index
// writes is far smaller.
const valueThreshold = 256 << 10

// Mode says how recall ranks, for /status, e.g. "hybrid: bm25 +
// text-embedding-3-small (384d)" or "bm25 only (no embeddings endpoint
// configured)"; while records wait for embeddings it says how many, and
// until the index is ready, how far its load or rebuild is.
func (x *Index) Mode() string {
	mode := "bm25 only (no embeddings endpoint configured)"
	if x.emb != nil {
		dims := "dimensions not yet known"
		if d := x.emb.Dims(); d > 0 {
			dims = fmt.Sprintf("%dd", d)
		}
		mode = fmt.Sprintf("hybrid: bm25 + %s (%s)", x.emb.Model(), dims)
	}
	st := x.Stats()
	if st.PendingEmbeds > 0 {
		mode += fmt.Sprintf("; %d records waiting for embeddings", st.PendingEmbeds)
	}
	switch {
	case st.Phase == "unavailable":
		mode += "; index unavailable, searching the newest records of the store"
	case !st.Ready:
		mode += fmt.Sprintf("; index %s %.0f%% (until ready, search ranks the newest records of the store)", st.Phase, 100*st.Progress)
	}
	return mode
}

// Stats returns counters for /status and tests.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.loaded {
		s := Stats{Phase: "loading", LastError: x.lastErr}
		switch {
		case x.broken:
			s.Phase = "unavailable"
		case x.rebuild:
			s.Phase = "rebuilding"
		}
		if t := x.loadTotal.Load(); t > 0 {
			s.Progress = float64(x.loadDone.Load()) / float64(t)
		}
		return s
	}
	s := Stats{Docs: len(x.docs), PendingEmbeds: len(x.pending), Cursor: x.cursor, Saved: x.savedSeq, LastError: x.lastErr, Ready: x.ready, Phase: "ready", Progress: 1}
	if !x.ready {
		s.Phase = "catching up"
		if x.rebuild {
			s.Phase = "rebuilding"
		}
		if x.target > 0 {
			s.Progress = min(1, float64(x.cursor)/float64(x.target))
		}
	}
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
		loaded, broken, closed := x.loaded, x.broken, x.closed
		var cur uint64
		var embedding bool
		if loaded {
			cur, embedding = x.cursor, x.attempted < x.enqueued
		}
		x.mu.Unlock()
		switch {
		case closed:
			return errors.New("recall: sync: index closed")
		case broken:
			return nil // Search reads the Source itself
		case !loaded:
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

// WaitLoaded waits until the index has loaded what it saved, or found it
// unusable and started rebuilding (Stats then says "rebuilding").
func (x *Index) WaitLoaded(ctx context.Context) error {
	select {
	case <-x.started:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("recall: wait for load: %w", ctx.Err())
	}
}

// unread reports whether the Source still holds a record in (after, upto].
func (x *Index) unread(ctx context.Context, after, upto uint64) bool {
	for rec, err := range x.cfg.Source.Query(ctx, memory.Query{AfterSeq: after, Ascending: true, Limit: 1}) {
		return err != nil || rec.Seq <= upto
	}
	return false
}

// Close stops following the Source, checkpoints, and closes the index. It
// does not wait for a load in progress to finish: the load stops.
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
	<-x.started
	x.wg.Wait()
	x.mu.RLock()
	loaded := x.loaded
	x.mu.RUnlock()
	var err error
	if loaded { // a load cut short holds part of the index: saving it would lose the rest
		err = x.checkpoint()
		if err == nil && x.emb != nil {
			err = x.syncGraphs(true)
		}
	}
	if cerr := x.closeDB(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("recall: close %s: %w", x.cfg.Dir, err)
	}
	return nil
}

// setErr records a background error. A full disk is logged once until
// the index saves again.
func (x *Index) setErr(err error) {
	x.mu.Lock()
	quiet := errors.Is(err, memory.ErrDiskFull) && x.diskFull
	x.diskFull = errors.Is(err, memory.ErrDiskFull)
	x.lastErr = err.Error()
	x.mu.Unlock()
	if !quiet {
		x.log.Error("recall", "err", err)
	}
}
