package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sys/unix"

	"github.com/depai/depai/memory/internal/badgerfile"
	"github.com/depai/depai/memory/internal/kv"
)

// Errors about the data directory itself; test them with errors.Is.
var (
	// ErrDamaged: files of the store do not verify. Open changed nothing;
	// Repair salvages what verifies.
	ErrDamaged = errors.New("memory: data directory damaged")
	// ErrReadOnly: the store cannot be written (a read-only file system or
	// directory, or Config.ReadOnly).
	ErrReadOnly = errors.New("memory: read-only")
)

// Damage is one part of a store that does not verify.
type Damage struct {
	File   string `json:"file"`             // file name inside the store's directory
	Offset int64  `json:"offset,omitempty"` // byte offset in File, when known
	What   string `json:"what"`
	// Lost are the record Seqs the damage makes unreadable, as inclusive
	// ranges, when they can be told (Repair fills them in exactly).
	Lost []SeqRange `json:"lost,omitempty"`
}

func (d Damage) String() string {
	s := d.File
	if d.Offset > 0 {
		s += fmt.Sprintf(" at byte %d", d.Offset)
	}
	s += ": " + d.What
	if len(d.Lost) > 0 {
		s += fmt.Sprintf(" (records %s)", rangesString(d.Lost))
	}
	return s
}

// SeqRange is an inclusive range of record Seqs.
type SeqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// N is the number of Seqs in the range.
func (r SeqRange) N() uint64 { return r.To - r.From + 1 }

func rangesString(rs []SeqRange) string {
	parts := make([]string, 0, len(rs))
	var n uint64
	for _, r := range rs {
		n += r.N()
		if len(parts) == 8 {
			parts = append(parts, "…")
			continue
		}
		if len(parts) > 8 {
			continue
		}
		if r.From == r.To {
			parts = append(parts, fmt.Sprint(r.From))
		} else {
			parts = append(parts, fmt.Sprintf("%d–%d", r.From, r.To))
		}
	}
	return fmt.Sprintf("%s; %d in all", strings.Join(parts, ", "), n)
}

// DamageError is what Open returns for a damaged store: nothing on disk was
// changed. It wraps ErrDamaged.
type DamageError struct {
	Dir    string
	Damage []Damage
}

func (e *DamageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "memory: %s: data directory damaged, nothing was changed: ", e.Dir)
	for i, d := range e.Damage {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	b.WriteString(" — `depai memory verify` lists all of it; `depai memory verify --repair` keeps what verifies (the damaged directory is kept beside it) and reports what was lost")
	return b.String()
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// The sequence mark: the Seq of the newest acknowledged commit, kept in a
// file outside badger's logs, so a store whose logs lost their tail can
// tell. It is written after each group commit has synced (without its own
// fsync: after a power cut it can only lag, never lead), and checked on
// open against the newest commit badger's files hold (the meta key
// kv.MetaLastSeq, written in every commit).
//
//	seq u64 BE | crc32c(seq) u32 BE | "dpsm"
const (
	markFile  = "depai-seqmark"
	markMagic = "dpsm"
)

func encodeMark(seq uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, seq)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	return append(b, markMagic...)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// readMark returns the sequence mark of dir, 0 if there is none.
func readMark(dir string) (uint64, *Damage, error) {
	b, err := os.ReadFile(filepath.Join(dir, markFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	if len(b) != 16 || string(b[12:]) != markMagic || crc32.Checksum(b[:8], crcTable) != binary.BigEndian.Uint32(b[8:]) {
		return 0, &Damage{File: markFile, What: fmt.Sprintf("sequence mark does not verify (%d bytes); continuity cannot be proven", len(b))}, nil
	}
	return binary.BigEndian.Uint64(b), nil, nil
}

// checkLevel says how much a check reads.
type checkLevel int

const (
	// checkOpen: what badger would replay or trust on open — the MANIFEST,
	// every table's index and blocks, every write-ahead log, the newest
	// value log, and the sequence mark.
	checkOpen checkLevel = iota
	// checkAll: also every value log, every record's encoding, and the
	// sequence of Seqs.
	checkAll
)

// fileCheck is the result of checking a directory's files.
type fileCheck struct {
	damage []Damage
	mark   uint64
	// lastSeqWAL is the newest kv.MetaLastSeq found in the write-ahead
	// logs, 0 if none: then it is in the tables (or the store is old).
	lastSeqWAL uint64
	tables     []badgerfile.TableInfo
	blocks     int
	logs       int
	entries    int
	torn       int64
}

// checkFiles checks dir without badger and without writing anything.
func checkFiles(dir string, level checkLevel) (fileCheck, error) {
	var fc fileCheck
	mark, md, err := readMark(dir)
	if err != nil {
		return fc, err
	}
	fc.mark = mark
	if md != nil {
		fc.damage = append(fc.damage, *md)
	}
	tables, err := badgerfile.Manifest(dir)
	if err != nil {
		fc.damage = append(fc.damage, Damage{File: "MANIFEST", What: err.Error()})
		ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
		fc.tables = unlistedTables(ssts) // for Repair to salvage
		return fc, nil
	}
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 && len(ssts) > 0 {
		// badger would delete every table as left over from a compaction.
		fc.damage = append(fc.damage, Damage{File: "MANIFEST", What: fmt.Sprintf("lists no tables, but %d table files are present (%s…)", len(ssts), filepath.Base(ssts[0]))})
		fc.tables = unlistedTables(ssts)
	} else {
		fc.tables = tables
	}
	var known verifiedTables
	if level == checkOpen {
		known = readVerified(dir)
	}
	tdmg, lastSeqTables := checkTablesLastSeq(fc.tables, &fc.blocks, known)
	fc.damage = append(fc.damage, tdmg...)

	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	sort.Strings(mems)
	sort.Strings(vlogs)
	if level == checkOpen && len(vlogs) > 0 {
		// badger replays only the newest; of the others it reads the header.
		for _, path := range vlogs {
			if d := badgerfile.CheckLogHeader(path); d != nil {
				fc.damage = append(fc.damage, Damage{File: d.File, What: d.What})
			}
		}
		vlogs = vlogs[len(vlogs)-1:]
	}
	var tornAcked []int // indexes in fc.damage
	for _, path := range append(mems, vlogs...) {
		s, closeFn, err := badgerfile.ScanLog(path, false)
		if err != nil {
			if os.IsPermission(err) {
				return fc, err
			}
			fc.damage = append(fc.damage, Damage{File: filepath.Base(path), What: err.Error()})
			continue
		}
		fc.logs++
		for _, t := range s.Txns {
			fc.entries += len(t.Entries)
			for _, e := range t.Entries {
				if string(badgerfile.UserKey(e.Key)) == kv.MetaLastSeq && strings.HasSuffix(path, ".mem") {
					if seq, err := kv.Seq(e.Value); err == nil && seq > fc.lastSeqWAL {
						fc.lastSeqWAL = seq
					}
				}
			}
		}
		if s.Damage != nil {
			what := s.Damage.What
			if s.Damage.Len > 0 {
				what += fmt.Sprintf("; %d bytes from there do not verify", s.Damage.Len)
			}
			fc.damage = append(fc.damage, Damage{File: s.Damage.File, Offset: s.Damage.Offset, What: what})
		}
		fc.torn += s.Torn
		// A torn transaction was never acknowledged — unless the mark says
		// its commit was: then the log lost an acknowledged tail.
		for _, k := range s.TornKeys {
			if string(badgerfile.UserKey(k)) == kv.MetaLastSeq {
				continue
			}
			if uk := badgerfile.UserKey(k); len(uk) == 9 && uk[0] == kv.PrefixRecord {
				if seq := binary.BigEndian.Uint64(uk[1:]); seq <= mark {
					fc.damage = append(fc.damage, Damage{File: filepath.Base(path), Offset: s.ValidEnd,
						What: fmt.Sprintf("the last transaction is incomplete but held record %d, which was acknowledged (sequence mark %d)", seq, mark)})
					tornAcked = append(tornAcked, len(fc.damage)-1)
					break
				}
			}
		}
		closeFn()
	}
	for _, i := range tornAcked {
		fc.damage[i].Lost = []SeqRange{{fc.lastSeqWAL + 1, mark}}
	}
	if len(fc.damage) == 0 && fc.lastSeqWAL == 0 && lastSeqTables < mark {
		fc.damage = append(fc.damage, Damage{File: "tables", What: fmt.Sprintf("hold commits up to record %d and the write-ahead log none, but records up to %d were acknowledged (sequence mark)", lastSeqTables, mark),
			Lost: []SeqRange{{lastSeqTables + 1, mark}}})
	}
	if len(fc.damage) == 0 && fc.lastSeqWAL != 0 && fc.lastSeqWAL < mark {
		fc.damage = append(fc.damage, Damage{File: filepath.Base(mems[len(mems)-1]), What: fmt.Sprintf("write-ahead log holds commits up to record %d, but records up to %d were acknowledged (sequence mark)", fc.lastSeqWAL, mark),
			Lost: []SeqRange{{fc.lastSeqWAL + 1, mark}}})
	}
	return fc, nil
}

// checkTablesConcurrently opens every table and verifies every block, two
// tables at a time.
func checkTablesConcurrently(tables []badgerfile.TableInfo, blocks *int) []Damage {
	d, _ := checkTablesLastSeq(tables, blocks, nil)
	return d
}

// checkTablesLastSeq checks every table, two at a time, and returns the
// newest kv.MetaLastSeq they hold.
func checkTablesLastSeq(tables []badgerfile.TableInfo, blocks *int, known verifiedTables) ([]Damage, uint64) {
	var newestVer, lastSeq uint64
	var mu sync.Mutex
	var damage []Damage
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, ti := range tables {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d, n, seq, ver := checkTableLastSeq(ti, known.has(ti.Path))
			mu.Lock()
			*blocks += n
			if ver > newestVer {
				newestVer, lastSeq = ver, seq
			}
			if d != nil {
				damage = append(damage, *d)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(damage, func(a, b Damage) int { return strings.Compare(a.File, b.File) })
	return damage, lastSeq
}

func checkTable(ti badgerfile.TableInfo) (*Damage, int) {
	d, n, _, _ := checkTableLastSeq(ti, false)
	return d, n
}

// checkTableLastSeq checks a table and returns the kv.MetaLastSeq it holds
// (ver 0: none).
func checkTableLastSeq(ti badgerfile.TableInfo, verified bool) (dmg *Damage, blocks int, lastSeq, ver uint64) {
	name := filepath.Base(ti.Path)
	if _, err := os.Stat(ti.Path); err != nil {
		return &Damage{File: name, What: fmt.Sprintf("table %d listed in MANIFEST (level %d): %v", ti.ID, ti.Level, err)}, 0, 0, 0
	}
	t, err := badgerfile.OpenTable(ti)
	if err != nil {
		return &Damage{File: name, What: err.Error()}, 0, 0, 0
	}
	defer t.Close()
	n := 0
	if !verified {
		// Counting blocks walks the whole index (it was a third of a
		// start at 1M records): only for a table whose blocks are read.
		n = t.Blocks()
		if b, err := t.Verify(); err != nil {
			return &Damage{File: name, What: fmt.Sprintf("block %d of %d: %v", b, n, err)}, n, 0, 0
		}
	}
	if v, ver, ok, err := t.Get([]byte(kv.MetaLastSeq)); err == nil && ok {
		if seq, err := kv.Seq(v); err == nil {
			return nil, n, seq, ver
		}
	}
	return nil, n, 0, 0
}

// unlistedTables describes table files the MANIFEST does not list, for
// salvage: the compression is the one their first block decodes with.
func unlistedTables(paths []string) []badgerfile.TableInfo {
	var out []badgerfile.TableInfo
	for _, p := range paths {
		var id uint64
		if _, err := fmt.Sscanf(filepath.Base(p), "%06d.sst", &id); err != nil {
			continue
		}
		ti := badgerfile.TableInfo{ID: id, Path: p, Compression: options.Snappy}
		if t, err := badgerfile.OpenTable(ti); err == nil {
			if _, err := t.Verify(); err != nil {
				ti.Compression = options.None
			}
			t.Close()
		}
		out = append(out, ti)
	}
	return out
}

// The verified-tables file lists the tables whose every block an open
// verified, by file identity: name, size and ctime (which every write to
// the file, and every chmod, changes). Tables are immutable, so a later
// open checks only their index, and the blocks of tables new since; a
// table modified since it was verified is verified again. Damage that
// leaves ctime alone (the disk's own bit rot) is found by Verify, Export
// and badger's checksum on every block read.
const verifiedFile = "depai-verified"

type verifiedTables map[string]string // file name → "size ctime"

func tableIdentity(path string) (string, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", false
	}
	return fmt.Sprintf("%d %d", st.Size, st.Ctim.Nano()), true
}

func readVerified(dir string) verifiedTables {
	b, err := os.ReadFile(filepath.Join(dir, verifiedFile))
	if err != nil {
		return nil
	}
	v := verifiedTables{}
	for line := range strings.Lines(string(b)) {
		if name, id, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			v[name] = id
		}
	}
	return v
}

func (v verifiedTables) has(path string) bool {
	want, ok := v[filepath.Base(path)]
	if !ok {
		return false
	}
	id, ok := tableIdentity(path)
	return ok && id == want
}

// writeVerified records tables as verified. A failure costs only a
// re-verification on the next open.
func writeVerified(dir string, tables []badgerfile.TableInfo) {
	var b strings.Builder
	for _, t := range tables {
		if id, ok := tableIdentity(t.Path); ok {
			fmt.Fprintf(&b, "%s %s\n", filepath.Base(t.Path), id)
		}
	}
	tmp := filepath.Join(dir, verifiedFile+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err == nil {
		_ = os.Rename(tmp, filepath.Join(dir, verifiedFile))
	}
}
