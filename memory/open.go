package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sys/unix"

	"github.com/depai/depai/memory/internal/kv"
)

// Open opens (or creates) the store in cfg.Dir.
//
// Before badger reads anything, Open checks the directory's files itself
// (badger would silently truncate a log at its first bad entry and skip
// unreadable table blocks): the MANIFEST, every table's index and block
// checksums, every write-ahead log entry, the newest value log, and the
// sequence mark that proves no acknowledged commit is missing. A directory
// that is not a depai memory store, or that does not verify, is an error
// that says which file and what is wrong (a *DamageError wrapping
// ErrDamaged); nothing in it is changed. With Config.Repair set, a damaged
// store is repaired first (see Repair) and DB.Repaired says what was lost.
// A directory that cannot be written is an error wrapping ErrReadOnly that
// says how to read it; Config.ReadOnly opens it for reading.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("memory: open: %w: Config.Dir is empty", ErrInvalid)
	}
	opts, err := badgerOptions(&cfg)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: open %s: %w", cfg.Dir, err)
	}
	if !cfg.ReadOnly {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("memory: open %s: %w", cfg.Dir, openError(cfg.Dir, err))
		}
	}
	fresh, err := isEmptyDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("memory: open %s: %w", cfg.Dir, openError(cfg.Dir, err))
	}
	if fresh && cfg.ReadOnly {
		return nil, fmt.Errorf("memory: open %s read-only: %w: the directory is empty or missing", cfg.Dir, ErrNotFound)
	}
	if !cfg.ReadOnly {
		if err := unix.Access(cfg.Dir, unix.W_OK); err != nil {
			return nil, fmt.Errorf("memory: open %s: %w", cfg.Dir, openError(cfg.Dir, err))
		}
	}
	minFree, minFreeWhy := freeThreshold(cfg, opts)
	var repaired *RepairReport
	var fc fileCheck
	if !fresh {
		if _, err := os.Stat(filepath.Join(cfg.Dir, "MANIFEST")); err != nil {
			return nil, fmt.Errorf("memory: open %s: not a depai memory store (no MANIFEST): %w", cfg.Dir, err)
		}
		if fc, err = checkFiles(cfg.Dir, checkOpen); err != nil {
			return nil, fmt.Errorf("memory: open %s: %w", cfg.Dir, openError(cfg.Dir, err))
		}
		if len(fc.damage) > 0 {
			if !cfg.Repair || cfg.ReadOnly {
				return nil, &DamageError{Dir: cfg.Dir, Damage: fc.damage}
			}
			rep, err := Repair(ctx, cfg)
			if err != nil {
				return nil, err
			}
			repaired = &rep
			if fc, err = checkFiles(cfg.Dir, checkOpen); err != nil {
				return nil, fmt.Errorf("memory: open %s after repair: %w", cfg.Dir, err)
			}
			if len(fc.damage) > 0 {
				return nil, fmt.Errorf("memory: open %s after repair: %w", cfg.Dir, &DamageError{Dir: cfg.Dir, Damage: fc.damage})
			}
		}
	}
	if cfg.ReadOnly {
		opts = opts.WithReadOnly(true)
	}
	bdb, err := openBadger(opts)
	switch {
	case err == nil:
	case strings.Contains(err.Error(), "directory lock"):
		return nil, fmt.Errorf("memory: open %s: in use by another process: %w", cfg.Dir, err)
	case cfg.ReadOnly && errors.Is(err, badger.ErrTruncateNeeded):
		return nil, fmt.Errorf("memory: open %s read-only: %w: its write-ahead log ends in a write a crash interrupted, which only a writable open drops; copy the directory to a writable place (cp -a %s COPY) and open the copy: %v", cfg.Dir, ErrReadOnly, cfg.Dir, err)
	case fresh:
		return nil, fmt.Errorf("memory: open %s: %w", cfg.Dir, openError(cfg.Dir, err))
	default:
		return nil, fmt.Errorf("memory: open %s: badger refused files that verified: %w", cfg.Dir, openError(cfg.Dir, err))
	}
	db := &DB{
		cfg:      cfg,
		bdb:      bdb,
		log:      cfg.Logger,
		reqs:     make(chan *request, 1024),
		quit:     make(chan struct{}),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		ns:       make(map[string]struct{}),
		watchers: make(map[*watcher]struct{}),
		entropy:  rand.NewPCG(uint64(time.Now().UnixNano()), 0x9E3779B97F4A7C15),
		repaired: repaired,
		minFree:  minFree,
		minWhy:   minFreeWhy,
	}
	if err := db.load(fresh); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("memory: open %s: %w", cfg.Dir, err)
	}
	if db.metaLastSeq < fc.mark {
		// Reached only when the logs held no commit (checkFiles compared
		// theirs): the newest commit is in the tables.
		bdb.Close()
		return nil, &DamageError{Dir: cfg.Dir, Damage: []Damage{{File: "tables", What: fmt.Sprintf("hold commits up to record %d, but records up to %d were acknowledged (sequence mark)", db.metaLastSeq, fc.mark),
			Lost: []SeqRange{{db.metaLastSeq + 1, fc.mark}}}}}
	}
	if !cfg.ReadOnly {
		if db.mark, err = os.OpenFile(filepath.Join(cfg.Dir, markFile), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
			bdb.Close()
			return nil, fmt.Errorf("memory: open %s: sequence mark: %w", cfg.Dir, openError(cfg.Dir, err))
		}
		if fc.mark == 0 {
			db.writeMark(db.metaLastSeq)
		}
		if !fresh {
			writeVerified(cfg.Dir, fc.tables)
		}
	}
	if db.versioned != nil {
		go db.commitAfter(db.versioned)
	} else {
		go db.commitLoop()
	}
	if cfg.GCInterval > 0 && !cfg.ReadOnly {
		db.bg.Go(db.gcLoop)
	}
	if cfg.TrimInterval > 0 {
		db.bg.Go(db.trimLoop)
	}
	return db, nil
}

// Repaired returns what Config.Repair did on open, nil if the store needed
// no repair.
func (db *DB) Repaired() *RepairReport { return db.repaired }

// writeMark records seq as acknowledged. Called by the committer, after
// badger synced the commit that set kv.MetaLastSeq to seq.
func (db *DB) writeMark(seq uint64) {
	if db.mark == nil {
		return
	}
	if _, err := db.mark.WriteAt(encodeMark(seq), 0); err != nil && !db.markFailed {
		db.markFailed = true
		db.log.Warn("memory: cannot update the sequence mark; continuity is proven only up to its last value", "dir", db.cfg.Dir, "err", err)
	}
}

// openError says what a file-system error on open means for the user.
func openError(dir string, err error) error {
	switch {
	case errors.Is(err, unix.EROFS) || strings.Contains(err.Error(), "read-only file system"):
		return fmt.Errorf("%w: %s is on a read-only file system; to read it, open it read-only (depai memory export|stats|verify --read-only), or copy it to a writable place (cp -a %s COPY) and use the copy: %v", ErrReadOnly, dir, dir, err)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: permission denied: %s and its files must be readable and writable by uid %d (to only read it, use --read-only): %v", ErrDenied, dir, os.Getuid(), err)
	case errors.Is(err, unix.ENOSPC):
		free, _ := freeBytes(dir)
		return fmt.Errorf("%w: no space left in %s (%d bytes free): %v", ErrDiskFull, dir, free, err)
	}
	return err
}

// openBadger turns a badger panic on garbage input into an error: some
// corrupt files make badger index out of range instead of failing cleanly.
func openBadger(opts badger.Options) (bdb *badger.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("badger: %v", p)
		}
	}()
	return badger.Open(opts)
}

func badgerOptions(cfg *Config) (badger.Options, error) {
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = 1 << 20
	}
	if cfg.MaxRecordBytes < 0 {
		return badger.Options{}, fmt.Errorf("memory: open %s: %w: MaxRecordBytes %d is negative", cfg.Dir, ErrInvalid, cfg.MaxRecordBytes)
	}
	if cfg.GCInterval == 0 {
		cfg.GCInterval = 10 * time.Minute
	}
	if cfg.WatchBuffer <= 0 {
		cfg.WatchBuffer = 64
	}
	if cfg.CommitDelay == 0 {
		cfg.CommitDelay = DefaultCommitDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	o := badger.DefaultOptions(cfg.Dir).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithLogger(badgerLogger{cfg.Logger}).
		WithMetricsEnabled(false).
		WithValueThreshold(64 << 10).
		WithCompression(options.Snappy)
	recent, recentBytes, trim := 4096, 512<<10, time.Duration(-1)
	switch cfg.Profile {
	case "", ProfileDefault:
		o = o.WithMemTableSize(16 << 20).
			WithValueLogFileSize(256 << 20).
			WithBlockCacheSize(64 << 20).
			WithIndexCacheSize(32 << 20)
	case ProfileLowMem:
		recent, recentBytes, trim = 512, 64<<10, time.Second
		o = o.WithMemTableSize(8 << 20).
			WithNumMemtables(2).
			WithNumLevelZeroTables(4).
			WithNumLevelZeroTablesStall(12).
			WithBaseTableSize(2 << 20).
			WithBaseLevelSize(16 << 20).
			WithValueLogFileSize(16 << 20).
			WithBlockCacheSize(0).
			WithCompression(options.None). // badger needs a block cache to decompress
			WithIndexCacheSize(4 << 20).
			WithNumCompactors(2).
			WithNumGoroutines(2)
	default:
		return badger.Options{}, fmt.Errorf("memory: open %s: %w: profile %q, want %q or %q", cfg.Dir, ErrInvalid, cfg.Profile, ProfileDefault, ProfileLowMem)
	}
	if cfg.RecentRecords == 0 {
		cfg.RecentRecords = recent
	}
	if cfg.RecentBytes == 0 {
		cfg.RecentBytes = recentBytes
	}
	if cfg.TrimInterval == 0 {
		cfg.TrimInterval = trim
	}
	// One record and its index keys must fit in one badger transaction
	// (15% of a memtable); 64 KiB covers the keys.
	if limit := o.MemTableSize*15/100 - 64<<10; int64(cfg.MaxRecordBytes) > limit {
		return badger.Options{}, fmt.Errorf("memory: open %s: %w: MaxRecordBytes %d is too large for profile %q (at most %d)",
			cfg.Dir, ErrInvalid, cfg.MaxRecordBytes, cfg.Profile, limit)
	}
	if cfg.MinFreeBytes < 0 {
		return badger.Options{}, fmt.Errorf("memory: open %s: %w: MinFreeBytes %d is negative, want 0 (the profile's default) or a size", cfg.Dir, ErrInvalid, cfg.MinFreeBytes)
	}
	return o, nil
}

// freeThreshold is the free space below which the store refuses writes
// (Config.MinFreeBytes), and how it was chosen, for the error that says so.
//
// The default is the profile's worst case: a memtable's write-ahead log and
// its flush into a table (two memtables), and a value-log file mapped at
// twice its size. It is not scaled down on a small disk: with 16 MiB kept
// free (two lowmem memtables) a store on a filled 72 MiB tmpfs died of
// SIGBUS in badger's memtable flush on its next open.
func freeThreshold(cfg Config, o badger.Options) (int64, string) {
	profile := cmp.Or(cfg.Profile, ProfileDefault)
	if cfg.MinFreeBytes > 0 {
		return cfg.MinFreeBytes, fmt.Sprintf("Config.MinFreeBytes, profile %s", profile)
	}
	return 2*o.MemTableSize + 2*o.ValueLogFileSize, fmt.Sprintf("the default of profile %s: two memtables and two value-log files; Config.MinFreeBytes changes it", profile)
}

// sizeString is n bytes for people.
func sizeString(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}

func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil // Bsize is uint32 on darwin
}

// load reads the format version, the namespace set, the last Seq and the
// newest records into RAM. A new store holds none of them: it only gets its
// format version (writeVersion), and so does a store that holds nothing at
// all, which is a new one whose first open crashed before that was durable.
func (db *DB) load(fresh bool) error {
	if fresh {
		db.versioned = db.writeVersion()
		db.recent = newRing(db.cfg.RecentRecords, db.cfg.RecentBytes, nil, 1)
		return nil
	}
	return db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(kv.MetaVersion))
		if errors.Is(err, badger.ErrKeyNotFound) && !db.cfg.ReadOnly && isEmptyStore(txn) {
			db.versioned = db.writeVersion()
			db.recent = newRing(db.cfg.RecentRecords, db.cfg.RecentBytes, nil, 1)
			return nil
		}
		if err != nil {
			return fmt.Errorf("data directory is corrupt or truncated, or not a depai memory store: its format-version record is missing: %w", err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("data directory is corrupt: format version: %w", err)
		}
		if string(v) != kv.FormatVersion {
			return fmt.Errorf("data format %q, this build reads %q", v, kv.FormatVersion)
		}
		if item, err := txn.Get([]byte(kv.MetaLastSeq)); err == nil {
			if err := item.Value(func(v []byte) error {
				var err error
				db.metaLastSeq, err = kv.Seq(v)
				return err
			}); err != nil {
				return fmt.Errorf("data directory is corrupt: last-seq record: %w", err)
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kv.PrefixNSSet}})
		for it.Rewind(); it.Valid(); it.Next() {
			db.ns[string(it.Item().Key()[1:])] = struct{}{}
		}
		it.Close()

		it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kv.PrefixRecord}, Reverse: true, PrefetchValues: false})
		defer it.Close()
		it.Seek(kv.RecordKey(^uint64(0)))
		var newest []Record
		held := 0 // bytes of newest, as the ring counts them
		for ; it.Valid(); it.Next() {
			seq, err := kv.SeqSuffix(it.Item().Key())
			if err != nil {
				return fmt.Errorf("data directory is corrupt: %w", err)
			}
			if db.lastSeq.Load() == 0 {
				db.lastSeq.Store(seq)
			}
			if len(newest) >= db.cfg.RecentRecords || held >= db.cfg.RecentBytes {
				break
			}
			var rec Record
			if err := it.Item().Value(func(v []byte) error {
				var err error
				rec, err = decodeRecord(seq, v)
				return err
			}); err != nil {
				return fmt.Errorf("data directory is corrupt: record %d: %w", seq, err)
			}
			newest = append(newest, rec)
			held += recordBytes(&rec)
		}
		slices.Reverse(newest)
		// Seqs are never reused: not after the newest records expired, nor
		// after Repair lost some.
		if db.metaLastSeq > db.lastSeq.Load() {
			db.lastSeq.Store(db.metaLastSeq)
		}
		// With every record in RAM, the ring is complete down to Seq 1.
		floor := uint64(1)
		if it.Valid() {
			seq, _ := kv.SeqSuffix(it.Item().Key())
			floor = seq + 1
		}
		db.recent = newRing(db.cfg.RecentRecords, db.cfg.RecentBytes, newest, floor)
		return nil
	})
}

// isEmptyStore reports whether txn sees no key at all (badger's own keys
// aside, which no iterator shows).
func isEmptyStore(txn *badger.Txn) bool {
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	it.Rewind()
	return !it.Valid()
}

// writeVersion stores the format version of a new store without waiting
// for its sync: that sync (a second one of the write-ahead log and of the
// value log) was most of what opening an empty directory cost after
// badger's own open, and nothing needs it until the first commit, which
// commitAfter holds back until it is done. It returns the write's outcome
// once it is durable.
func (db *DB) writeVersion() <-chan error {
	done := make(chan error, 1)
	txn := db.bdb.NewTransaction(true)
	if err := txn.Set([]byte(kv.MetaVersion), []byte(kv.FormatVersion)); err != nil {
		txn.Discard()
		done <- err
		return done
	}
	txn.CommitWith(func(err error) { done <- err })
	return done
}

// commitAfter runs the committer once versioned (writeVersion) reports,
// so that no record is acknowledged in a store whose format version is not
// durable: a later Open would refuse such a store. Writes queue in db.reqs
// meanwhile. If the version was not written, every write fails with why.
func (db *DB) commitAfter(versioned <-chan error) {
	if err := <-versioned; err != nil {
		err = fmt.Errorf("memory: %s: the new store's format version was not written, so no write is taken: %w", db.cfg.Dir, err)
		db.log.Error(err.Error())
		db.refuseWrites(err)
		return
	}
	db.commitLoop()
}

// refuseWrites answers every write with err until Close, in the
// committer's place.
func (db *DB) refuseWrites(err error) {
	defer close(db.stopped)
	for {
		select {
		case r := <-db.reqs:
			r.done <- err
		case <-db.stop:
			for {
				select {
				case r := <-db.reqs:
					r.done <- err
				default:
					return
				}
			}
		}
	}
}
