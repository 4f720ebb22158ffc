package memory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/memory/internal/badgerfile"
)

// Profiles for Config.Profile.
const (
	ProfileDefault = "default"
	// ProfileLowMem is for small robots: no block cache, 2 small memtables,
	// small tables and value-log files, a bounded index cache, few compactors.
	ProfileLowMem = "lowmem"
)

// DefaultCommitDelay is Config.CommitDelay's default. A commit of one
// record costs 210–300 µs of CPU on the 2-core VM measured, most of it the
// fsync (BenchmarkPutDeferred/writers=1), so writes that can wait share
// one; 2 ms is far below what a model call takes, and a deferred write is
// at most that much later.
const DefaultCommitDelay = 2 * time.Millisecond

// Config configures Open. The zero value of every field but Dir is a safe default.
type Config struct {
	Dir     string // data directory; created (mode 0700) if missing
	Profile string // "" or ProfileDefault, or ProfileLowMem
	// MaxRecordBytes bounds one encoded record (text, data, tags, vector…);
	// larger records fail with ErrTooLarge. Default 1 MiB.
	MaxRecordBytes int
	// GCInterval is how often value-log garbage collection runs. Default 10
	// minutes; negative disables it.
	GCInterval time.Duration
	// RecentRecords is how many of the newest records are kept decoded in RAM
	// to serve newest-N queries. Default 4096 (lowmem 512); negative disables.
	RecentRecords int
	// RecentBytes bounds the heap those records hold (text, data, tags,
	// vectors and their slots), so that large records cannot make the ring
	// grow past it: the oldest go first. Default 512 KiB (lowmem 64 KiB);
	// negative disables the ring.
	RecentBytes int
	// CommitDelay is how long a deferred write (PutDeferred) may wait for
	// other writes to share its commit and its fsync: a steady stream of
	// deferred writes then syncs about once a CommitDelay instead of once a
	// write, and a write that is not deferred ends the wait at once.
	// Default DefaultCommitDelay; negative: deferred writes commit as soon
	// as Put's do.
	CommitDelay time.Duration
	// WatchBuffer is how many commit batches one watcher may fall behind
	// before it resumes from its cursor instead. Default 64.
	WatchBuffer int
	// TrimInterval is how often the store asks the kernel to drop the pages
	// of its memory-mapped table files from the resident set (Linux,
	// madvise MADV_PAGEOUT). Default 1 s for ProfileLowMem, off (negative)
	// for the default profile.
	TrimInterval time.Duration
	// MinFreeBytes is the free disk space below which Put fails with
	// ErrDiskFull instead of writing. badger writes through memory-mapped,
	// preallocated files, and a write into a file the disk cannot back kills
	// the process (SIGBUS) — so the store refuses writes while it still has
	// room. Default: twice the memtable plus twice the value-log file size
	// (544 MiB, lowmem 48 MiB). Less risks that crash when the disk fills:
	// 16 MiB was not enough for lowmem (see freeThreshold).
	MinFreeBytes int64
	// ReadOnly opens the store for reading only (badger's read-only mode):
	// nothing in the directory is written, Put fails with ErrReadOnly. It
	// reads a read-only copy, which must have been closed cleanly or copied
	// from a store that was.
	ReadOnly bool
	// Repair, when the store does not verify on open, salvages it first
	// (see Repair) instead of refusing; DB.Repaired says what was lost.
	Repair bool
	Logger *slog.Logger // default slog.Default()
	// OnCommit, when set, is told of each group commit (observe.go).
	OnCommit func(CommitInfo)
}

// DB is the badger-backed Store. It implements Store, Watcher and Facts.
type DB struct {
	cfg Config
	bdb *badger.DB
	log *slog.Logger
	// minFree is the free space below which writes are refused, minWhy
	// how it was chosen (freeThreshold).
	minFree int64
	minWhy  string

	reqs    chan *request
	quit    chan struct{} // closed by Close: ends reads, watches, GC and trim
	stop    chan struct{} // closed by Close once no write is in flight: stops the committer
	stopped chan struct{} // closed when the committer has exited

	// closeMu guards closed; operations hold it shared while they register
	// with writes or reads, so Close waits for every operation that started.
	closeMu sync.RWMutex
	closed  bool
	writes  sync.WaitGroup // Put, PutFact, Import: the committer outlives them
	reads   sync.WaitGroup
	bg      sync.WaitGroup // GC goroutine

	lastSeq atomic.Uint64
	commits atomic.Uint64 // badger commits (fsyncs) made by the committer

	nsMu sync.RWMutex
	ns   map[string]struct{}

	recent *ring
	read   readCache // records Get read from badger

	watchMu  sync.Mutex
	watchers map[*watcher]struct{}

	// owned by the committer goroutine
	entropy     *rand.PCG
	gatherTimer *time.Timer // gather's, reused from one commit to the next
	mark        *os.File    // the sequence mark (nil when read-only)
	markFailed  bool

	metaLastSeq uint64 // kv.MetaLastSeq as loaded
	repaired    *RepairReport
	// versioned reports the format version's write in a new store (nil:
	// the store had one); the committer starts once it is durable.
	versioned <-chan error
}

var (
	_ Store   = (*DB)(nil)
	_ Watcher = (*DB)(nil)
	_ Facts   = (*DB)(nil)
)

// LastSeq returns the Seq of the newest committed record.
func (db *DB) LastSeq() uint64 { return db.lastSeq.Load() }

// Put validates recs and stores them atomically: all or none. It returns
// once they are durable. Concurrent Puts share one commit and one fsync.
func (db *DB) Put(ctx context.Context, recs ...Record) ([]Record, error) {
	return db.put(ctx, recs, false)
}

// PutDeferred is Put for a caller that does not wait on the write at once
// (a turn's record, written after its answer went out): the commit may wait
// up to Config.CommitDelay for other writes to share it, which spares the
// disk and the CPU an fsync per write. It is as durable as Put once it
// returns; what it costs is that moment of latency.
func (db *DB) PutDeferred(ctx context.Context, recs ...Record) ([]Record, error) {
	return db.put(ctx, recs, true)
}

// Flush commits at once whatever deferred writes wait with, and returns
// when that commit is durable: for a caller that now waits on writes it
// deferred (a deferred write that reaches the store after Flush waits as
// any other does).
func (db *DB) Flush(ctx context.Context) error {
	_, err := db.submit(ctx, &request{op: opPut})
	return err
}

func (db *DB) put(ctx context.Context, recs []Record, deferred bool) ([]Record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	now := time.Now()
	for i := range recs {
		if err := checkRecord(&recs[i], now); err != nil {
			return nil, fmt.Errorf("memory: put record %d: %w", i, err)
		}
	}
	return db.submit(ctx, &request{op: opPut, recs: slices.Clone(recs), deferred: deferred})
}

// submit hands a request to the committer and waits for its outcome.
func (db *DB) submit(ctx context.Context, r *request) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: put: %w", err)
	}
	if db.cfg.ReadOnly {
		return nil, fmt.Errorf("memory: put: %w: %s was opened read-only", ErrReadOnly, db.cfg.Dir)
	}
	if !db.enter(&db.writes) {
		return nil, fmt.Errorf("memory: put: %w", ErrClosed)
	}
	defer db.writes.Done()
	r.done = make(chan error, 1)
	select {
	case db.reqs <- r:
	case <-ctx.Done():
		return nil, fmt.Errorf("memory: put: %w", ctx.Err())
	}
	select {
	case err := <-r.done:
		if err != nil {
			return nil, fmt.Errorf("memory: put: %w", err)
		}
		return r.recs, nil
	case <-ctx.Done():
		// The request may still commit; the caller was not told it did.
		return nil, fmt.Errorf("memory: put: %w", ctx.Err())
	}
}

// enter registers an operation in wg unless the store is closed.
func (db *DB) enter(wg *sync.WaitGroup) bool {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return false
	}
	wg.Add(1)
	return true
}

// Get returns the record with the given ID.
func (db *DB) Get(ctx context.Context, id string) (Record, error) {
	uid, err := ulid.ParseStrict(id)
	if err != nil {
		return Record{}, fmt.Errorf("memory: get %q: %w: id is not a ULID: %v", id, ErrInvalid, err)
	}
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("memory: get %s: %w", id, err)
	}
	if !db.enter(&db.reads) {
		return Record{}, fmt.Errorf("memory: get %s: %w", id, ErrClosed)
	}
	defer db.reads.Done()
	// Recent records are answered from RAM (recall fetches its hits by ID,
	// once per turn); a fact needs badger to know whether it is superseded.
	key := binary.BigEndian.Uint64(uid[6:14])
	rec, ok := db.recent.get(key, id)
	if !ok {
		rec, ok = db.read.get(key, id)
	}
	if ok && rec.Kind != KindFact {
		if !Match(Query{}, &rec, time.Now()) {
			return Record{}, fmt.Errorf("memory: get %s: %w", id, ErrNotFound)
		}
		return rec, nil
	}
	err = db.bdb.View(func(txn *badger.Txn) error {
		var err error
		if rec, err = lookupID(txn, uid); err != nil {
			return err
		}
		return annotateFact(txn, &rec)
	})
	if errors.Is(err, badger.ErrKeyNotFound) || err == nil && !Match(Query{}, &rec, time.Now()) {
		return Record{}, fmt.Errorf("memory: get %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("memory: get %s: %w", id, err)
	}
	if db.cfg.RecentRecords > 0 { // a store without a ring caches nothing
		db.read.put(key, &rec, db.cfg.RecentBytes)
	}
	return rec, nil
}

// Close commits what was already submitted, ends watches (they yield
// ErrClosed) and closes badger. Operations started after Close fail with
// ErrClosed.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	db.closeMu.Unlock()
	close(db.quit)
	db.writes.Wait()
	close(db.stop)
	<-db.stopped
	db.reads.Wait()
	db.bg.Wait()
	err := db.bdb.Close()
	if db.mark != nil {
		// After badger's close: the mark must never lead the data.
		err = errors.Join(err, db.mark.Sync(), db.mark.Close())
		// The tables now listed were verified by the open or written by
		// this process; the next open checks only their index (unless a
		// file changed since: see verifiedFile).
		if err == nil {
			if tables, terr := badgerfile.Manifest(db.cfg.Dir); terr == nil {
				writeVerified(db.cfg.Dir, tables)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("memory: close %s: %w", db.cfg.Dir, err)
	}
	return nil
}

func (db *DB) gcLoop() {
	t := time.NewTicker(db.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		n := 0
		for db.bdb.RunValueLogGC(0.5) == nil {
			n++
			select {
			case <-db.quit:
				return
			default:
			}
		}
		if n > 0 {
			db.log.Info("memory: value-log GC rewrote files", "dir", db.cfg.Dir, "files", n)
		}
	}
}

func (db *DB) trimLoop() {
	dir, err := filepath.Abs(db.cfg.Dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		db.log.Warn("memory: not trimming the resident set", "dir", db.cfg.Dir, "err", err)
		return
	}
	t := time.NewTicker(db.cfg.TrimInterval)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
			if _, err := pageOut(dir); err != nil {
				db.log.Warn("memory: trimming the resident set", "dir", dir, "err", err)
				return
			}
		}
	}
}

// badgerLogger sends badger's log to slog; its Info chatter goes to Debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(badgerMsg(f, a))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(badgerMsg(f, a))
}

// Infof and Debugf format only for a logger that keeps debug records:
// badger calls Debugf on every write.
func (b badgerLogger) Infof(f string, a ...any) {
	if b.l.Enabled(context.Background(), slog.LevelDebug) {
		b.l.Debug(badgerMsg(f, a))
	}
}
func (b badgerLogger) Debugf(f string, a ...any) {
	if b.l.Enabled(context.Background(), slog.LevelDebug) {
		b.l.Debug(badgerMsg(f, a))
	}
}

func badgerMsg(f string, a []any) string {
	return "badger: " + strings.TrimRight(fmt.Sprintf(f, a...), "\n")
}
