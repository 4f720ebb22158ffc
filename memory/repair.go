package memory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4/y"

	"github.com/depai/depai/memory/internal/badgerfile"
	"github.com/depai/depai/memory/internal/kv"
)

// VerifyReport is what Verify checked and found.
type VerifyReport struct {
	Dir     string `json:"dir"`
	Tables  int    `json:"tables"`
	Blocks  int    `json:"blocks"`
	Logs    int    `json:"logs"`
	Entries int    `json:"log_entries"`
	Records int    `json:"records"` // readable, unexpired records
	Expired int    `json:"expired"` // expired records not yet compacted away
	LastSeq uint64 `json:"last_seq"`
	// Mark is the sequence mark: the newest acknowledged Seq as recorded
	// outside badger's logs (0: none, a store written before marks).
	Mark uint64 `json:"mark"`
	// Gaps are Seqs from 1 to LastSeq with no record. Expired records that
	// compaction removed and Seqs an import skipped leave gaps too; damage
	// is reported in Damage, not here.
	Gaps []SeqRange `json:"gaps,omitempty"`
	// Torn counts bytes of writes interrupted by a crash: never
	// acknowledged, dropped on the next open.
	Torn   int64    `json:"torn_bytes,omitempty"`
	Damage []Damage `json:"damage,omitempty"`
}

// OK reports whether nothing is damaged.
func (r *VerifyReport) OK() bool { return len(r.Damage) == 0 }

// Verify checks every file of the store in dir without opening it and
// without writing anything, so it works on a read-only copy and beside
// nothing but a stopped store: the MANIFEST, every table block's checksum,
// every log entry's checksum and transaction structure, every record's
// encoding, the sequence mark against the newest commit, and the Seqs for
// gaps. The error is for what prevents checking (no such directory,
// permission denied); damage is in the report.
func Verify(ctx context.Context, dir string) (VerifyReport, error) {
	rep := VerifyReport{Dir: dir}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		return rep, fmt.Errorf("memory: verify %s: not a depai memory store (no MANIFEST): %w", dir, err)
	}
	fc, err := checkFiles(dir, checkAll)
	if err != nil {
		return rep, fmt.Errorf("memory: verify %s: %w", dir, explainOSError(err))
	}
	rep.Tables, rep.Blocks, rep.Logs, rep.Entries, rep.Mark, rep.Torn = len(fc.tables), fc.blocks, fc.logs, fc.entries, fc.mark, fc.torn
	rep.Damage = fc.damage
	sv, err := salvage(ctx, dir, fc.tables, false)
	if err != nil {
		return rep, fmt.Errorf("memory: verify %s: %w", dir, err)
	}
	// Damage the file checks found is already reported; salvage adds what
	// only reading every record shows.
	for _, d := range sv.damage {
		if !slices.ContainsFunc(rep.Damage, func(o Damage) bool { return o.File == d.File && (o.Offset == d.Offset || d.Offset == 0) }) {
			rep.Damage = append(rep.Damage, d)
		}
	}
	rep.Records, rep.Expired, rep.LastSeq = sv.live, sv.expired, sv.maxSeq
	rep.Gaps = sv.gaps(sv.maxSeq)
	if sv.metaLastSeq < fc.mark && !slices.ContainsFunc(rep.Damage, func(d Damage) bool { return len(d.Lost) > 0 }) {
		rep.Damage = append(rep.Damage, Damage{File: markFile, What: fmt.Sprintf("records up to %d were acknowledged, the store's files reach %d", fc.mark, sv.metaLastSeq),
			Lost: []SeqRange{{sv.metaLastSeq + 1, fc.mark}}})
	}
	return rep, nil
}

// RepairReport says what Repair kept and lost.
type RepairReport struct {
	Dir      string `json:"dir"`
	Damaged  string `json:"damaged_copy,omitempty"` // where the damaged directory was moved ("" if nothing needed repair)
	Salvaged int    `json:"salvaged"`               // records kept
	// Lost are the Seqs of records the damage destroyed. Expired records
	// and Seqs an import skipped are not counted.
	Lost   []SeqRange `json:"lost,omitempty"`
	Damage []Damage   `json:"damage,omitempty"`
}

// LostCount is the number of lost records.
func (r *RepairReport) LostCount() uint64 {
	var n uint64
	for _, l := range r.Lost {
		n += l.N()
	}
	return n
}

// Repair salvages a damaged store: it reads every record that verifies
// (tables block by block, logs transaction by transaction, past the
// damage), writes them with their IDs and Seqs into a new store, moves the
// damaged directory aside (to cfg.Dir + ".damaged-TIME", kept for
// forensics) and puts the new one in its place. Indexes are rebuilt from
// the records. It reports exactly which Seqs were lost. A store that
// verifies is left as it is. The store must not be open.
func Repair(ctx context.Context, cfg Config) (RepairReport, error) {
	dir := cfg.Dir
	rep := RepairReport{Dir: dir}
	fc, err := checkFiles(dir, checkAll)
	if err != nil {
		return rep, fmt.Errorf("memory: repair %s: %w", dir, explainOSError(err))
	}
	sv, err := salvage(ctx, dir, fc.tables, true)
	if err != nil {
		return rep, fmt.Errorf("memory: repair %s: %w", dir, err)
	}
	rep.Damage = fc.damage
	for _, d := range sv.damage {
		if !slices.ContainsFunc(rep.Damage, func(o Damage) bool { return o.File == d.File }) {
			rep.Damage = append(rep.Damage, d)
		}
	}
	sv.mark = fc.mark
	if sv.metaLastSeq < fc.mark {
		sv.lostCandidates = append(sv.lostCandidates, SeqRange{sv.metaLastSeq + 1, fc.mark})
	}
	rep.Salvaged = sv.live
	rep.Lost = sv.lost()
	if len(rep.Damage) == 0 && len(rep.Lost) == 0 {
		return rep, nil
	}
	stamp := time.Now().UTC().Format("20060102T150405")
	tmp := dir + ".repair-" + stamp
	ncfg := cfg
	ncfg.Dir = tmp
	ncfg.Repair = false
	db, err := Open(ctx, ncfg)
	if err != nil {
		return rep, fmt.Errorf("memory: repair %s: new store: %w", dir, err)
	}
	if err := sv.writeTo(ctx, db); err == nil {
		db.writeMark(max(sv.maxSeq, sv.metaLastSeq, sv.mark))
	} else {
		_ = db.Close()
		return rep, fmt.Errorf("memory: repair %s: writing salvaged records to %s (the damaged store is untouched): %w", dir, tmp, err)
	}
	if err := db.Close(); err != nil {
		return rep, fmt.Errorf("memory: repair %s: %w", dir, err)
	}
	rep.Damaged = dir + ".damaged-" + stamp
	if err := os.Rename(dir, rep.Damaged); err != nil {
		return rep, fmt.Errorf("memory: repair %s: moving the damaged store aside (the repaired one is in %s): %w", dir, tmp, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return rep, fmt.Errorf("memory: repair %s: the damaged store is in %s, the repaired one in %s: %w", dir, rep.Damaged, tmp, err)
	}
	return rep, nil
}

type salvaged struct {
	dir     string
	now     uint64
	keep    bool
	recs    map[uint64]*version // by Seq
	idem    map[string]*version
	damage  []Damage
	live    int
	expired int
	maxSeq  uint64
	// metaLastSeq is the newest kv.MetaLastSeq value found.
	metaLastSeq    uint64
	metaVersion    uint64
	mark           uint64
	lostCandidates []SeqRange
}

type version struct {
	ver     uint64
	val     []byte
	expires uint64
	deleted bool
}

// salvage reads every record it can from dir's tables and logs.
func salvage(ctx context.Context, dir string, tables []badgerfile.TableInfo, keep bool) (*salvaged, error) {
	sv := &salvaged{dir: dir, now: uint64(time.Now().Unix()), keep: keep, recs: map[uint64]*version{}, idem: map[string]*version{}}
	for _, ti := range tables {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t, err := badgerfile.OpenTable(ti)
		if err != nil {
			// The whole table is unreadable: its key range is unknown, so
			// every Seq not found elsewhere below the newest is a candidate.
			sv.lostCandidates = append(sv.lostCandidates, SeqRange{1, ^uint64(0)})
			continue
		}
		bad := t.Scan(func(key []byte, vs y.ValueStruct) {
			sv.add(filepath.Base(ti.Path), 0, key, vs.Value, vs.Meta, vs.ExpiresAt)
		})
		t.Close()
		for _, b := range bad {
			sv.lostCandidates = append(sv.lostCandidates, keyRangeSeqs(b.From, b.To))
		}
	}
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	slices.Sort(mems)
	for _, path := range mems {
		s, closeFn, err := badgerfile.ScanLog(path, true)
		if err != nil {
			return nil, err
		}
		before := uint64(0)
		for _, t := range s.Txns {
			for _, e := range t.Entries {
				sv.add(filepath.Base(path), e.Offset, e.Key, e.Value, e.Meta, e.ExpiresAt)
				before = max(before, recordSeq(e.Key))
			}
		}
		if s.Damage != nil {
			after := ^uint64(0)
			for _, t := range s.After {
				for _, e := range t.Entries {
					sv.add(filepath.Base(path), e.Offset, e.Key, e.Value, e.Meta, e.ExpiresAt)
					if seq := recordSeq(e.Key); seq != 0 {
						after = min(after, seq)
					}
				}
			}
			sv.lostCandidates = append(sv.lostCandidates, SeqRange{before + 1, after - 1})
		}
		closeFn()
	}
	for seq, v := range sv.recs {
		switch {
		case v.deleted:
		case v.expires != 0 && v.expires <= sv.now:
			sv.expired++
		default:
			sv.live++
		}
		sv.maxSeq = max(sv.maxSeq, seq)
	}
	return sv, nil
}

func recordSeq(key []byte) uint64 {
	uk := badgerfile.UserKey(key)
	if len(uk) == 9 && uk[0] == kv.PrefixRecord {
		return binary.BigEndian.Uint64(uk[1:])
	}
	return 0
}

// keyRangeSeqs turns the user-key range of a lost table block into the
// record Seqs it may have held (an empty range if it held none).
func keyRangeSeqs(from, to []byte) SeqRange {
	r := SeqRange{1, ^uint64(0)}
	if len(from) > 0 && from[0] > kv.PrefixRecord || len(to) > 0 && to[0] < kv.PrefixRecord {
		return SeqRange{1, 0}
	}
	if len(from) == 9 && from[0] == kv.PrefixRecord {
		r.From = binary.BigEndian.Uint64(from[1:])
	}
	if len(to) == 9 && to[0] == kv.PrefixRecord {
		r.To = binary.BigEndian.Uint64(to[1:]) - 1
	}
	return r
}

// add keeps the newest version of each record, meta and idempotency key.
func (sv *salvaged) add(file string, off int64, key, val []byte, meta byte, expires uint64) {
	uk := badgerfile.UserKey(key)
	ver := badgerfile.Version(key)
	if len(uk) == 0 {
		return
	}
	if meta&badgerfile.BitValuePointer != 0 && meta&badgerfile.BitDelete == 0 {
		vp, ok := badgerfile.DecodeValuePointer(val)
		if !ok {
			sv.damage = append(sv.damage, Damage{File: file, Offset: off, What: fmt.Sprintf("key %q has a malformed value pointer", uk)})
			return
		}
		v, err := badgerfile.ReadValue(sv.dir, vp)
		if err != nil {
			sv.damage = append(sv.damage, Damage{File: filepath.Base(badgerfile.VlogPath(sv.dir, vp.Fid)), Offset: int64(vp.Offset), What: err.Error()})
			if seq := recordSeq(key); seq != 0 {
				sv.lostCandidates = append(sv.lostCandidates, SeqRange{seq, seq})
			}
			return
		}
		val = v
	}
	put := func(m map[uint64]*version, k uint64) {
		if old := m[k]; old != nil && old.ver >= ver {
			return
		}
		v := &version{ver: ver, expires: expires, deleted: meta&badgerfile.BitDelete != 0}
		if sv.keep {
			v.val = slices.Clone(val)
		}
		m[k] = v
	}
	switch {
	case len(uk) == 9 && uk[0] == kv.PrefixRecord:
		seq := binary.BigEndian.Uint64(uk[1:])
		if meta&badgerfile.BitDelete == 0 {
			if _, err := decodeRecord(seq, val); err != nil {
				sv.damage = append(sv.damage, Damage{File: file, Offset: off, What: fmt.Sprintf("record %d does not decode: %v", seq, err), Lost: []SeqRange{{seq, seq}}})
				sv.lostCandidates = append(sv.lostCandidates, SeqRange{seq, seq})
				return
			}
		}
		put(sv.recs, seq)
	case string(uk) == kv.MetaLastSeq:
		if ver >= sv.metaVersion {
			if seq, err := kv.Seq(val); err == nil {
				sv.metaVersion, sv.metaLastSeq = ver, seq
			}
		}
	case uk[0] == kv.PrefixIdem:
		if old := sv.idem[string(uk)]; old == nil || old.ver < ver {
			sv.idem[string(uk)] = &version{ver: ver, val: slices.Clone(val), expires: expires, deleted: meta&badgerfile.BitDelete != 0}
		}
	}
}

// gaps lists the Seqs in [1, upto] with no record at all.
func (sv *salvaged) gaps(upto uint64) []SeqRange {
	seqs := make([]uint64, 0, len(sv.recs))
	for s := range sv.recs {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	var out []SeqRange
	next := uint64(1)
	for _, s := range seqs {
		if s > upto {
			break
		}
		if s > next {
			out = append(out, SeqRange{next, s - 1})
		}
		next = s + 1
	}
	if next <= upto {
		out = append(out, SeqRange{next, upto})
	}
	return out
}

// lost is the Seqs the damage may have held, less those salvaged, bounded
// by the newest Seq the store acknowledged.
func (sv *salvaged) lost() []SeqRange {
	top := max(sv.maxSeq, sv.metaLastSeq)
	for _, c := range sv.lostCandidates {
		if c.To != ^uint64(0) {
			top = max(top, c.To)
		}
	}
	var out []SeqRange
	for _, c := range sv.lostCandidates {
		c.To = min(c.To, top)
		for s := c.From; s <= c.To && s != 0; s++ {
			if _, ok := sv.recs[s]; ok {
				continue
			}
			if n := len(out); n > 0 && out[n-1].To+1 == s {
				out[n-1].To = s
			} else if n == 0 || out[n-1].To < s {
				out = append(out, SeqRange{s, s})
			}
		}
	}
	slices.SortFunc(out, func(a, b SeqRange) int { return compareU64(a.From, b.From) })
	return mergeRanges(out)
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func mergeRanges(rs []SeqRange) []SeqRange {
	var out []SeqRange
	for _, r := range rs {
		if n := len(out); n > 0 && r.From <= out[n-1].To+1 {
			out[n-1].To = max(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// writeTo stores the salvaged records in db, in Seq order with their IDs
// and Seqs, and the unexpired idempotency keys.
func (sv *salvaged) writeTo(ctx context.Context, db *DB) error {
	seqs := make([]uint64, 0, len(sv.recs))
	for s, v := range sv.recs {
		if !v.deleted && (v.expires == 0 || v.expires > sv.now) {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	batch := make([]Record, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		req := &request{op: opImport, recs: batch}
		if _, err := db.submit(ctx, req); err != nil {
			return err
		}
		batch = make([]Record, 0, importBatch)
		return nil
	}
	for _, s := range seqs {
		rec, err := decodeRecord(s, sv.recs[s].val)
		if err != nil {
			return err
		}
		batch = append(batch, rec)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	// The new store continues after every Seq the old one acknowledged.
	top := max(sv.maxSeq, sv.metaLastSeq, sv.mark)
	idem := []kvPair{{[]byte(kv.MetaLastSeq), kv.SeqValue(top), 0}}
	for k, v := range sv.idem {
		if !v.deleted && (v.expires == 0 || v.expires > sv.now) {
			idem = append(idem, kvPair{[]byte(k), v.val, v.expires})
		}
	}
	return db.restoreRaw(idem)
}

type kvPair struct {
	k, v    []byte
	expires uint64
}

// explainOSError adds what to do to errors from the file system.
func explainOSError(err error) error {
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("permission denied: the store's directory and files must be readable (and, to open it for writing, writable) by uid %d: %w", os.Getuid(), err)
	case strings.Contains(err.Error(), "read-only file system"):
		return fmt.Errorf("%w: on a read-only file system: %v", ErrReadOnly, err)
	}
	return err
}
