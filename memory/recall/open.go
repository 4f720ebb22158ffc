package recall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sys/unix"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/internal/badgerfile"
	"github.com/depai/depai/memory/recall/internal/bm25"
	"github.com/depai/depai/memory/recall/internal/hnsw"
)

// formatVersion is stored under keyFormat. An index of another version —
// or without one, once it holds documents — is rebuilt from the Source.
// Version 3 stores tags as hashes (fnv32).
const formatVersion = "depai-recall-3"

// Open opens or creates the index in cfg.Dir and returns at once: the
// index loads what it saved, or rebuilds itself from cfg.Source, in the
// background, and then follows the Source. Stats says how far it is;
// Search answers meanwhile (see Search). A saved index that is damaged,
// missing or of another format version is not an error: the index is
// derived data, so it is removed and rebuilt from the Source, and the
// reason is logged and kept in Stats.LastError. Only a bad Config is an
// error.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if cfg.Source == nil {
		return nil, errors.New("recall: open: Config.Source is nil; want a memory store that is also a memory.Watcher")
	}
	if cfg.Dir == "" {
		return nil, errors.New("recall: open: Config.Dir is empty; want the index's data directory")
	}
	if cfg.ExactBelow < 0 || cfg.CheckpointEvery < 0 || cfg.EmbedBatch < 0 || cfg.EfSearch < 0 || cfg.MinFreeBytes < 0 {
		return nil, fmt.Errorf("recall: open %s: ExactBelow %d, CheckpointEvery %d, EmbedBatch %d, EfSearch %d, MinFreeBytes %d: want 0 (default) or positive values",
			cfg.Dir, cfg.ExactBelow, cfg.CheckpointEvery, cfg.EmbedBatch, cfg.EfSearch, cfg.MinFreeBytes)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("recall: open %s: %w", cfg.Dir, err)
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
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 96 << 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	x := &Index{
		cfg:     cfg,
		log:     log,
		emb:     cfg.Embedder,
		hcfg:    hnsw.Config{EfSearch: cfg.EfSearch},
		started: make(chan struct{}),
		target:  cfg.Source.LastSeq(),
	}
	x.resetState()
	x.cond = sync.NewCond(&x.mu)
	x.ctx, x.cancel = context.WithCancel(context.Background())
	go x.start()
	return x, nil
}

// resetState empties the in-memory index. Called before it is shared (by
// Open, or by start before loaded is set).
func (x *Index) resetState() {
	x.docs, x.cursor, x.saved, x.vecsBelow = nil, 0, 0, 0
	x.text = bm25.New()
	x.parts = map[string]*partition{}
	x.facts = map[factKey]uint32{}
	x.stagedParts = map[*partition]struct{}{}
	x.nss, x.strs = interner{}, interner{}
	x.pending, x.enqueued, x.attempted = nil, 0, 0
	x.loadDone.Store(0)
	x.loadTotal.Store(0)
}

// start loads the index — or, if that fails, removes the directory and
// rebuilds from the Source — then starts following the Source.
func (x *Index) start() {
	defer close(x.started)
	err := x.openAndLoad()
	if err != nil && x.ctx.Err() == nil {
		x.log.Warn("recall: saved index unusable; rebuilding it from the store in the background", "dir", x.cfg.Dir, "err", err)
		x.mu.Lock()
		x.lastErr = fmt.Sprintf("recall: saved index unusable, rebuilt from the store: %v", err)
		x.rebuild = true
		x.mu.Unlock()
		x.closeDB()
		x.resetState()
		if rerr := removeIndexFiles(x.cfg.Dir); rerr != nil {
			err = fmt.Errorf("%w; removing it: %v", err, rerr)
		} else {
			err = x.openAndLoad()
		}
		if err != nil && x.ctx.Err() == nil {
			x.log.Error("recall: index unavailable; search reads the store directly", "dir", x.cfg.Dir, "err", err)
			x.closeDB()
			x.mu.Lock()
			x.lastErr = fmt.Sprintf("recall: index unavailable (search reads the store directly): %v", err)
			x.broken = true
			x.mu.Unlock()
			return
		}
	}
	if x.ctx.Err() != nil {
		return
	}
	x.mu.Lock()
	x.loaded = true
	x.ready = x.cursor >= x.target
	for _, p := range x.parts {
		x.maybeBuild(p)
	}
	x.cond.Broadcast()
	x.mu.Unlock()
	recs := make(chan memory.Record, 4096)
	x.wg.Go(func() { x.watch(recs) })
	x.wg.Go(func() { x.ingest(recs) })
	if x.emb != nil {
		x.wg.Go(x.embedLoop)
	}
}

// graphFiles are the HNSW graphs' files (graphfile.go), and temporary
// files of snapshots cut short.
var graphFiles = []string{"graph-*.snap", "graph-*.log", ".graph-*"}

// removeIndexFiles removes badger's files and the graphs' from dir, and
// nothing else: a Config.Dir pointing at the wrong directory loses no one's
// data.
func removeIndexFiles(dir string) error {
	return removeFiles(dir, append([]string{"*.sst", "*.vlog", "*.mem", "MANIFEST", "KEYREGISTRY", "DISCARD", "LOCK"}, graphFiles...))
}

// removeFiles removes the files in dir that match patterns.
func removeFiles(dir string, patterns []string) error {
	var errs []error
	for _, pat := range patterns {
		paths, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range paths {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// lazyDocs is how many documents an index that started empty gathers
// before it opens its badger to save them (or Config.CheckpointEvery, when
// that is fewer): reading that many records again after a restart costs
// less than the open does a short-lived process.
const lazyDocs = 1024

// openAndLoad opens the index's badger and loads it. Called by start. A
// directory with no index in it is not opened yet (see Index.db).
func (x *Index) openAndLoad() error {
	if err := os.MkdirAll(x.cfg.Dir, 0o700); err != nil {
		return err
	}
	if err := checkDir(x.cfg.Dir); err != nil {
		return err
	}
	if empty, err := noIndexFiles(x.cfg.Dir); err != nil {
		return err
	} else if empty {
		x.dbLazy = true
		if x.target > 0 {
			// Nothing saved and a store to index: building it is a rebuild,
			// so until it is ready Search reads the store's newest records
			// rather than the few indexed yet.
			x.mu.Lock()
			x.rebuild = true
			x.mu.Unlock()
		}
		return nil
	}
	db, err := x.openBadger()
	if err != nil {
		return err
	}
	x.db = db
	x.loading = true
	err = x.load(x.ctx)
	x.loading = false
	return err
}

// noIndexFiles reports whether dir holds none of badger's files.
func noIndexFiles(dir string) (bool, error) {
	for _, pat := range []string{"*.sst", "*.vlog", "*.mem", "MANIFEST"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return false, err
		}
		if len(m) > 0 {
			return false, nil
		}
	}
	return true, nil
}

// openDB returns the index's badger, opening it first if it was left
// unopened (see Index.db); a new one gets the format version and model.
func (x *Index) openDB() (*badger.DB, error) {
	x.dbMu.Lock()
	defer x.dbMu.Unlock()
	if x.db != nil || !x.dbLazy {
		if x.db == nil {
			return nil, errors.New("recall: the index is closed")
		}
		return x.db, nil
	}
	db, err := x.openBadger()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", x.cfg.Dir, err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		if x.emb != nil {
			if err := txn.Set(keyModel, []byte(x.emb.Model())); err != nil {
				return err
			}
		}
		return txn.Set(keyFormat, []byte(formatVersion))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", x.cfg.Dir, err)
	}
	x.db, x.dbLazy = db, false
	return db, nil
}

// dbOpen reports whether the index's badger is open.
func (x *Index) dbOpen() bool {
	x.dbMu.Lock()
	defer x.dbMu.Unlock()
	return x.db != nil
}

func (x *Index) openBadger() (*badger.DB, error) {
	opts := badger.DefaultOptions(x.cfg.Dir).
		WithLogger(nil).
		WithSyncWrites(false). // derived data: after a crash it is rebuilt from the Store
		WithMetricsEnabled(false).
		WithCompression(options.Snappy).
		// A memtable's arena is live heap from the start, and this badger
		// takes only checkpoints (a few MiB at most) and vectors.
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(valueThreshold)
	return openBadger(opts)
}

// checkDir checks the footers of the index's tables before badger reads
// them: badger panics on a truncated table in a goroutine of its own, which
// no recover reaches.
func checkDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); errors.Is(err, os.ErrNotExist) {
		// badger would start an empty index beside the old files.
		for _, pat := range []string{"*.sst", "*.vlog", "*.mem"} {
			if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) > 0 {
				return fmt.Errorf("MANIFEST missing beside %s", filepath.Base(m[0]))
			}
		}
		return nil
	}
	tables, err := badgerfile.Manifest(dir)
	if err != nil {
		return err
	}
	for _, ti := range tables {
		t, err := badgerfile.OpenTable(ti)
		if err != nil {
			return err
		}
		t.Close()
	}
	return nil
}

// openBadger turns a badger panic on garbage input into an error.
func openBadger(opts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("badger: %v", p)
		}
	}()
	return badger.Open(opts)
}

func (x *Index) closeDB() error {
	x.dbMu.Lock()
	defer x.dbMu.Unlock()
	x.dbLazy = false
	if x.db == nil {
		return nil
	}
	err := x.db.Close()
	x.db = nil
	return err
}

// roomToWrite reports whether Dir has the free space Config.MinFreeBytes
// asks for; if not, it records why the index is not saving.
func (x *Index) roomToWrite() error {
	var st unix.Statfs_t
	if err := unix.Statfs(x.cfg.Dir, &st); err != nil {
		return nil // cannot tell; badger's own errors will say
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < x.cfg.MinFreeBytes {
		return fmt.Errorf("%w: %d bytes free in %s, the index needs %d to save safely; it keeps indexing in memory and saves once there is room", memory.ErrDiskFull, free, x.cfg.Dir, x.cfg.MinFreeBytes)
	}
	return nil
}
