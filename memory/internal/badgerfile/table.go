package badgerfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// TableInfo is one table the MANIFEST lists.
type TableInfo struct {
	ID          uint64
	Level       int
	Compression options.CompressionType
	Path        string
}

// Manifest reads dir's MANIFEST and returns the tables it lists, by ID.
func Manifest(dir string) (tables []TableInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("MANIFEST: unreadable (%v)", p)
		}
	}()
	f, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir))
	if err != nil {
		return nil, fmt.Errorf("MANIFEST: %w", err)
	}
	for id, t := range m.Tables {
		tables = append(tables, TableInfo{ID: id, Level: int(t.Level), Compression: t.Compression, Path: table.NewFilename(id, dir)})
	}
	return tables, nil
}

// blockSize is badger's default, which the store does not change; it only
// sizes decompression buffers.
const blockSize = 4 << 10

// Table is a table opened read-only.
type Table struct {
	t    *table.Table
	info TableInfo
}

// OpenTable opens a table read-only and checks its index checksum.
func OpenTable(info TableInfo) (tb *Table, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("table %s: index unreadable (%v)", filepath.Base(info.Path), p)
		}
	}()
	if err := checkFooter(info.Path); err != nil {
		return nil, err
	}
	mf, err := z.OpenMmapFile(info.Path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", filepath.Base(info.Path), err)
	}
	t, err := table.OpenTable(mf, table.Options{
		ReadOnly:    true,
		ChkMode:     options.OnBlockRead,
		Compression: info.Compression,
		BlockSize:   blockSize,
	})
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", filepath.Base(info.Path), err)
	}
	return &Table{t: t, info: info}, nil
}

// Close unmaps the table.
func (t *Table) Close() { _ = t.t.DecrRef() }

// Blocks is the number of blocks.
func (t *Table) Blocks() int { return len(t.t.KeySplits(1<<30, nil)) }

// Verify checks the checksum of every block. It returns the first damaged
// block's number and what is wrong, or -1.
func (t *Table) Verify() (block int, err error) {
	// One pass: the iterator reads (checksums, decompresses) each block
	// in turn and stops at the first that does not read. Stopping short of
	// the table's key count means damage; then find which block.
	if n, err := t.count(); err == nil && n == int(t.t.KeyCount()) {
		return -1, nil
	}
	keys := t.t.KeySplits(1<<30, nil)
	for i, k := range keys {
		if err := t.readsAt([]byte(k)); err != nil {
			return i, err
		}
	}
	return len(keys) - 1, errors.New("a block ends early (entries are missing)")
}

func (t *Table) count() (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable (%v)", p)
		}
	}()
	it := t.t.NewIterator(0)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n, nil
}

// readsAt reads the block whose first key is base (table reads it, checks
// its checksum, decompresses it). badger's own Table.VerifyChecksum
// dereferences a nil block on a read error; this does not.
func (t *Table) readsAt(base []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable (%v)", p)
		}
	}()
	it := t.t.NewIterator(0)
	defer it.Close()
	it.Seek(base)
	if !it.Valid() {
		return errors.New("checksum or format error")
	}
	return nil
}

// Scan calls fn for every entry of the table that can be read, in key
// order, and returns the blocks that could not be, with the key range
// each covered ([from, to) in user keys; to is nil for the last block).
func (t *Table) Scan(fn func(key []byte, vs y.ValueStruct)) (bad []BadBlock) {
	keys := t.t.KeySplits(1<<30, nil)
	for i := range keys {
		var to []byte
		if i+1 < len(keys) {
			to = []byte(keys[i+1])
		}
		if err := t.scanBlock([]byte(keys[i]), to, fn); err != nil {
			bad = append(bad, BadBlock{Table: filepath.Base(t.info.Path), Block: i, From: UserKey([]byte(keys[i])), To: UserKey(to), Err: err})
		}
	}
	return bad
}

// BadBlock is a table block that did not verify.
type BadBlock struct {
	Table    string
	Block    int
	From, To []byte // user keys; To nil: to the end of the table
	Err      error
}

func (t *Table) scanBlock(from, to []byte, fn func([]byte, y.ValueStruct)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable (%v)", p)
		}
	}()
	if err := t.readsAt(from); err != nil {
		return err
	}
	it := t.t.NewIterator(0)
	defer it.Close()
	for it.Seek(from); it.Valid(); it.Next() {
		k := it.Key()
		if to != nil && y.CompareKeys(k, to) >= 0 {
			return nil
		}
		fn(k, it.ValueCopy())
	}
	return nil
}

// Get returns the newest version of userKey in the table.
func (t *Table) Get(userKey []byte) (val []byte, ver uint64, ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("table %s: unreadable (%v)", filepath.Base(t.info.Path), p)
		}
	}()
	// Outside the table's key range or its bloom filter (no false
	// negatives), the key is not there: no block need be read. An open
	// asks every table for the store's last Seq.
	if bytes.Compare(userKey, y.ParseKey(t.t.Smallest())) < 0 || bytes.Compare(userKey, y.ParseKey(t.t.Biggest())) > 0 ||
		t.t.DoesNotHave(y.Hash(userKey)) {
		return nil, 0, false, nil
	}
	it := t.t.NewIterator(0)
	defer it.Close()
	it.Seek(y.KeyWithTs(userKey, ^uint64(0)))
	if !it.Valid() || !y.SameKey(it.Key(), y.KeyWithTs(userKey, 0)) {
		return nil, 0, false, nil
	}
	vs := it.ValueCopy()
	if vs.Meta&BitDelete != 0 {
		return nil, 0, false, nil
	}
	return vs.Value, y.ParseTs(it.Key()), true, nil
}

// checkFooter checks the footer of a table file. badger reads a table's
// index from offsets in its footer without checking them against the file
// size, and panics in a goroutine of its own (which no recover reaches) on
// a truncated table.
//
//	… index | uint32 len(index) | checksum | uint32 len(checksum)   (big-endian)
func checkFooter(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	bad := func(what string) error {
		return fmt.Errorf("table %s (%d bytes): %s", filepath.Base(path), size, what)
	}
	if size < 8 {
		return bad("too short for a footer")
	}
	var b [4]byte
	if _, err := f.ReadAt(b[:], size-4); err != nil {
		return err
	}
	cl := int64(binary.BigEndian.Uint32(b[:]))
	if cl > size-8 {
		return bad(fmt.Sprintf("checksum length %d exceeds the file", cl))
	}
	if _, err := f.ReadAt(b[:], size-8-cl); err != nil {
		return err
	}
	if il := int64(binary.BigEndian.Uint32(b[:])); il > size-8-cl {
		return bad(fmt.Sprintf("index length %d exceeds the file", il))
	}
	return nil
}

// ValuePointer locates a value in a value log.
type ValuePointer struct{ Fid, Len, Offset uint32 }

// DecodeValuePointer decodes badger's value pointer (three uint32 in
// machine byte order; badger copies the struct's memory).
func DecodeValuePointer(b []byte) (ValuePointer, bool) {
	if len(b) < 12 {
		return ValuePointer{}, false
	}
	return ValuePointer{binary.NativeEndian.Uint32(b), binary.NativeEndian.Uint32(b[4:]), binary.NativeEndian.Uint32(b[8:])}, true
}

// VlogPath is the path of value-log file fid in dir.
func VlogPath(dir string, fid uint32) string {
	return filepath.Join(dir, fmt.Sprintf("%06d.vlog", fid))
}

// ReadValue reads the value a pointer locates and checks its entry.
func ReadValue(dir string, vp ValuePointer) ([]byte, error) {
	path := VlogPath(dir, vp.Fid)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, vp.Len)
	if _, err := f.ReadAt(buf, int64(vp.Offset)); err != nil {
		return nil, fmt.Errorf("%s at byte %d: %w", filepath.Base(path), vp.Offset, err)
	}
	e, _, err := parseEntry(buf, 0)
	if err != nil {
		return nil, fmt.Errorf("%s at byte %d: %w", filepath.Base(path), vp.Offset, err)
	}
	return e.Value, nil
}
