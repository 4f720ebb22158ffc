package memory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/memory/internal/badgerfile"
	"github.com/depai/depai/memory/internal/kv"
)

// Export writes the records of s that match q as JSONL — one Record as JSON
// per line, in Seq order (q.Ascending is forced; q.Limit is honoured) — and
// returns how many it wrote. Vectors are written as JSON numbers, which
// round-trip float32 exactly. From a *DB, the export then checks every
// table block's checksum on disk, and fails with an error wrapping
// ErrDamaged if one does not verify: badger's iterators end early at an
// unreadable block instead of failing, so the export may lack records.
func Export(ctx context.Context, s Store, w io.Writer, q Query) (int, error) {
	q.Ascending = true
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n := 0
	for rec, err := range s.Query(ctx, q) {
		if err != nil {
			return n, fmt.Errorf("memory: export: %w", err)
		}
		if err := enc.Encode(&rec); err != nil {
			return n, fmt.Errorf("memory: export: record %s: %w", rec.ID, err)
		}
		n++
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("memory: export: %w", err)
	}
	if db, ok := s.(*DB); ok {
		if err := db.verifyTables(); err != nil {
			return n, fmt.Errorf("memory: export: %d records written, but the store's files are damaged and the export may lack records: %w", n, err)
		}
	}
	return n, nil
}

// verifyTables checks every block of every table the MANIFEST lists,
// reading the files themselves: badger's block cache may still hold a
// block whose bytes on disk were damaged since. A table that a compaction
// removed during the check is not damage: the check lists the tables again.
func (db *DB) verifyTables() error {
	if !db.enter(&db.reads) {
		return ErrClosed
	}
	defer db.reads.Done()
	for attempt := 0; ; attempt++ {
		tables, err := badgerfile.Manifest(db.cfg.Dir)
		if err != nil {
			return &DamageError{Dir: db.cfg.Dir, Damage: []Damage{{File: "MANIFEST", What: err.Error()}}}
		}
		var blocks int
		damage := checkTablesConcurrently(tables, &blocks)
		gone := slices.ContainsFunc(damage, func(d Damage) bool { return strings.Contains(d.What, "no such file") })
		switch {
		case len(damage) == 0:
			return nil
		case gone && attempt < 3:
			continue
		}
		return &DamageError{Dir: db.cfg.Dir, Damage: damage}
	}
}

// ImportOptions configures DB.Import.
type ImportOptions struct {
	// AllOrNothing imports nothing if any line is malformed. Otherwise the
	// good lines are imported and the bad ones reported.
	AllOrNothing bool
	// MaxLineBytes bounds one line. Default 16 MiB.
	MaxLineBytes int
}

// ImportReport says what an import did.
type ImportReport struct {
	Lines      int         // non-blank lines read
	Imported   int         // records stored
	Duplicates int         // records skipped: a record with the same ID is already stored
	Expired    int         // records skipped: their ExpiresAt has passed
	Bad        []LineError // malformed lines, in order
}

// LineError is a malformed import line.
type LineError struct {
	Line int // 1-based
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e LineError) Unwrap() error { return e.Err }

// importBatch is how many records one import commit carries.
const importBatch = 256

// Import reads JSONL as Export writes it and stores each record with its
// ID, Time, Recorded and everything else unchanged. Seq: a record keeps its
// exported Seq when that is above every Seq already stored, else it gets
// the next Seq; either way the file's order is the new commit order. So
// exporting a store, importing the file into an empty store and exporting
// again yields the same bytes. A record whose ID is already stored is
// skipped (counted as a duplicate), which makes re-running an interrupted
// import safe. ValidTo is recomputed, not read.
//
// When a line is malformed the error wraps ErrInvalid and the report lists
// every bad line; with AllOrNothing nothing was stored, otherwise the good
// lines were. The lines are validated before anything is written only in
// AllOrNothing mode (which holds the parsed file in memory).
func (db *DB) Import(ctx context.Context, r io.Reader, opt ImportOptions) (ImportReport, error) {
	if opt.MaxLineBytes <= 0 {
		opt.MaxLineBytes = 16 << 20
	}
	var rep ImportReport
	var pending, all []Record
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		req := &request{op: opImport, recs: pending}
		if _, err := db.submit(ctx, req); err != nil {
			return err
		}
		for _, s := range req.skipped {
			if s {
				rep.Duplicates++
			} else {
				rep.Imported++
			}
		}
		pending = nil
		return nil
	}
	br := bufio.NewReaderSize(r, 64<<10)
	now := time.Now()
	for line := 1; ; line++ {
		b, tooLong, err := readLine(br, opt.MaxLineBytes)
		if err != nil && !errors.Is(err, io.EOF) {
			return rep, fmt.Errorf("memory: import: line %d: %w", line, err)
		}
		if len(bytes.TrimSpace(b)) > 0 || tooLong {
			rep.Lines++
			if tooLong {
				rep.Bad = append(rep.Bad, LineError{line, fmt.Errorf("%w: line is longer than %d bytes", ErrInvalid, opt.MaxLineBytes)})
			} else if rec, perr := ParseLine(b); perr != nil {
				rep.Bad = append(rep.Bad, LineError{line, perr})
			} else if !rec.ExpiresAt.IsZero() && !rec.ExpiresAt.After(now) {
				rep.Expired++
			} else if opt.AllOrNothing {
				all = append(all, rec)
			} else {
				pending = append(pending, rec)
				if len(pending) == importBatch {
					if err := flush(); err != nil {
						return rep, fmt.Errorf("memory: import: before line %d: %w", line+1, err)
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if opt.AllOrNothing && len(rep.Bad) == 0 {
		for len(all) > 0 {
			n := min(importBatch, len(all))
			pending, all = all[:n:n], all[n:]
			if err := flush(); err != nil {
				return rep, fmt.Errorf("memory: import: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return rep, fmt.Errorf("memory: import: %w", err)
	}
	if len(rep.Bad) > 0 {
		what := "the other lines were imported"
		if opt.AllOrNothing {
			what = "nothing was imported"
		}
		return rep, fmt.Errorf("memory: import: %w: %d malformed line(s), first %v; %s", ErrInvalid, len(rep.Bad), rep.Bad[0], what)
	}
	return rep, nil
}

// readLine reads one line without its newline. A line longer than max is
// consumed and reported with tooLong.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max+1 {
			tooLong = true
			line = line[:0]
		} else {
			line = append(line, frag...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		if tooLong {
			line = nil
		}
		return line, tooLong, err
	}
}

// ParseLine decodes one exported line strictly: unknown fields, trailing
// data, a missing or malformed ID or Recorded, and anything Put would
// reject (except an expiry in the past) are errors naming the field.
func ParseLine(b []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rec Record
	if err := dec.Decode(&rec); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Record{}, fmt.Errorf("%w: data after the record", ErrInvalid)
	}
	if _, err := ulid.ParseStrict(rec.ID); err != nil {
		return Record{}, fmt.Errorf("%w: id %q is not a ULID: %v", ErrInvalid, rec.ID, err)
	}
	if rec.Recorded.IsZero() {
		return Record{}, fmt.Errorf("%w: recorded is missing", ErrInvalid)
	}
	if rec.Time.IsZero() {
		return Record{}, fmt.Errorf("%w: time is missing", ErrInvalid)
	}
	// With a zero "now" no expiry is in the past: Import decides what to do with expired records.
	if err := checkRecord(&rec, time.Time{}); err != nil {
		return Record{}, err
	}
	rec.ValidTo = time.Time{}
	return rec, nil
}

// Stats describes a store.
type Stats struct {
	Dir        string         `json:"dir"`
	LastSeq    uint64         `json:"last_seq"`
	Records    int            `json:"records"`    // live (unexpired) records
	Namespaces map[string]int `json:"namespaces"` // live records per namespace
	DiskBytes  int64          `json:"disk_bytes"` // allocated on disk by the store's files
}

// Stats counts records per namespace with a key-only index scan.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	if !db.enter(&db.reads) {
		return Stats{}, fmt.Errorf("memory: stats: %w", ErrClosed)
	}
	defer db.reads.Done()
	st := Stats{Dir: db.cfg.Dir, LastSeq: db.LastSeq(), Namespaces: map[string]int{}}
	var err error
	if st.DiskBytes, err = diskUsage(db.cfg.Dir); err != nil {
		return Stats{}, fmt.Errorf("memory: stats: %w", err)
	}
	err = db.bdb.View(func(txn *badger.Txn) error {
		for _, ns := range db.namespaces("") {
			p := kv.NamespacePrefix(ns)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			n := 0
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			it.Close()
			if err := ctx.Err(); err != nil {
				return err
			}
			st.Namespaces[ns] = n
			st.Records += n
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("memory: stats: %w", err)
	}
	return st, nil
}

// diskUsage sums the blocks allocated to the files in dir (badger's
// write-ahead files are sparse: their length overstates them).
func diskUsage(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return 0, err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
	}
	return n, nil
}
