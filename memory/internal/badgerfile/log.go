// Package badgerfile reads badger's files — write-ahead logs (.mem), value
// logs (.vlog), tables (.sst) and the MANIFEST — without opening badger, so
// the memory store can check a data directory before badger touches it.
// badger replays a log only up to its first bad entry and truncates the
// rest, and skips unreadable table blocks during iteration; both are silent.
// Nothing here writes to a file, and every badger panic on garbage input is
// turned into an error.
package badgerfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Log entry layout (badger v4, unencrypted):
//
//	file:  keyID u64 | baseIV [12]byte | entry…
//	entry: meta | userMeta | uvarint klen | uvarint vlen | uvarint expiresAt | key | value | crc32c BE
//
// Keys carry badger's 8-byte version suffix. Transactions are entries with
// bitTxn of one version, closed by an entry with bitFinTxn whose value is
// that version in decimal.
const (
	headerSize    = 20
	maxHeaderSize = 22
	maxKeySize    = 1 << 16

	BitDelete       byte = 1 << 0
	BitValuePointer byte = 1 << 1
	bitTxn          byte = 1 << 6
	bitFinTxn       byte = 1 << 7
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry is one key and value of a log. Key and Value alias the scanned file.
type Entry struct {
	Key       []byte // with badger's version suffix
	Value     []byte
	Meta      byte
	ExpiresAt uint64
	Offset    int64
}

// Txn is one complete transaction (or one entry written outside any).
type Txn struct {
	Entries    []Entry
	Start, End int64 // byte range in the file
}

// Damage is a region of a file that does not verify.
type Damage struct {
	File   string
	Offset int64
	Len    int64 // bytes that could not be read, 0 if unknown
	What   string
}

func (d Damage) Error() string {
	return fmt.Sprintf("%s at byte %d: %s", d.File, d.Offset, d.What)
}

// LogScan is what ScanLog found.
type LogScan struct {
	Size     int64 // bytes scanned: the file up to its last data extent
	ValidEnd int64 // end of the last complete transaction before the first damage
	// Torn is the length of an interrupted write after ValidEnd: entries of
	// an unfinished transaction, then zeros. badger drops it on open; it
	// was never acknowledged.
	Torn int64
	// TornKeys are the keys of the unfinished transaction's readable entries.
	TornKeys [][]byte
	// Damage is set when the file holds data that does not verify and that
	// an interrupted write cannot explain.
	Damage *Damage
	// Txns are the complete transactions before the damage; After those
	// found past it (only when ScanLog was asked to salvage).
	Txns, After []Txn
}

// ScanLog reads a log file and checks every entry's checksum and the
// transaction structure. The file is mapped read-only; the entries alias
// the mapping, which stays valid until close is called.
func ScanLog(path string, salvage bool) (s LogScan, closeFn func(), err error) {
	d, closeFn, err := mapFile(path)
	if err != nil {
		return LogScan{}, nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: unreadable log (%v)", path, p)
			closeFn()
			closeFn = nil
		}
	}()
	s = scan(path, d, salvage)
	return s, closeFn, nil
}

func scan(path string, d []byte, salvage bool) LogScan {
	s := LogScan{Size: int64(len(d))}
	name := baseName(path)
	if len(d) < headerSize {
		if len(d) > 0 && !allZero(d) {
			s.Damage = &Damage{File: name, What: fmt.Sprintf("%d bytes, too short for the %d-byte log header", len(d), headerSize)}
		}
		return s
	}
	if id := binary.BigEndian.Uint64(d); id != 0 {
		s.Damage = &Damage{File: name, What: fmt.Sprintf("log header names encryption key %d, and the store is not encrypted", id)}
		return s
	}
	off := headerSize
	s.ValidEnd = int64(off)
	var cur []Entry
	var curTs uint64
	start := off
	stopWhy := ""
loop:
	for {
		if off >= len(d) || allZero(d[off:min(off+maxHeaderSize, len(d))]) {
			break
		}
		e, n, err := parseEntry(d, off)
		if err != nil {
			stopWhy = err.Error()
			break
		}
		switch {
		case e.Meta&bitTxn != 0:
			ts := version(e.Key)
			if curTs == 0 {
				curTs, start = ts, off
			}
			if ts != curTs {
				stopWhy = fmt.Sprintf("entry of version %d inside the transaction of version %d", ts, curTs)
				break loop
			}
			cur = append(cur, e)
		case e.Meta&bitFinTxn != 0:
			ts, err := strconv.ParseUint(string(e.Value), 10, 64)
			if err != nil || ts != curTs {
				stopWhy = fmt.Sprintf("transaction end marker %q does not close transaction %d", e.Value, curTs)
				break loop
			}
			s.Txns = append(s.Txns, Txn{Entries: cur, Start: int64(start), End: int64(off + n)})
			cur, curTs = nil, 0
			s.ValidEnd = int64(off + n)
		default:
			if curTs != 0 {
				stopWhy = "entry outside the open transaction"
				break loop
			}
			s.Txns = append(s.Txns, Txn{Entries: []Entry{e}, Start: int64(off), End: int64(off + n)})
			s.ValidEnd = int64(off + n)
		}
		off += n
	}
	// What follows ValidEnd: the rest of an unfinished transaction, then
	// at off either nothing, zeros, or an entry that does not verify.
	last := lastNonZero(d, off)
	extent := off + maxHeaderSize
	if h, ok := parseHeader(d, off); ok && h.total <= 64<<20 {
		extent = max(extent, off+h.total)
	}
	if last < extent {
		// Everything after off lies within one entry being written: a torn
		// write, which badger discards and nobody was told had committed.
		if last >= int(s.ValidEnd) {
			s.Torn = int64(last + 1 - int(s.ValidEnd))
			for _, e := range cur {
				s.TornKeys = append(s.TornKeys, e.Key)
			}
			if last >= off {
				if k := readableKey(d, off); k != nil {
					s.TornKeys = append(s.TornKeys, k)
				}
			}
		}
		return s
	}
	if stopWhy == "" {
		stopWhy = "zeros where an entry should be"
	}
	dmg := &Damage{File: name, Offset: s.ValidEnd, What: stopWhy}
	if off != int(s.ValidEnd) {
		dmg.What = fmt.Sprintf("transaction starting at byte %d is incomplete, followed at byte %d by %s", s.ValidEnd, off, stopWhy)
	}
	s.Damage = dmg
	// Resynchronise after the next transaction end marker that verifies:
	// what follows it begins a transaction, and the rest of every damaged
	// one is skipped with it (a commit is all or nothing).
	next := skipDamagedTxn(d, off, last, curTs)
	if next < 0 {
		next = resync(d, off+1, last, curTs)
	}
	if next < 0 {
		dmg.Len = int64(last + 1 - int(s.ValidEnd))
		dmg.What += fmt.Sprintf("; the %d bytes after it hold no verifiable transaction", dmg.Len)
		return s
	}
	dmg.Len = int64(next) - s.ValidEnd
	if salvage {
		rest := scan(path, append(make([]byte, headerSize), d[next:]...), true)
		shift := int64(next - headerSize)
		for _, set := range [][]Txn{rest.Txns, rest.After} {
			for _, t := range set {
				t.Start += shift
				t.End += shift
				for i := range t.Entries {
					t.Entries[i].Offset += shift
				}
				s.After = append(s.After, t)
			}
		}
	}
	return s
}

type header struct {
	meta, userMeta byte
	klen, vlen     uint64
	expires        uint64
	hlen, total    int
}

func parseHeader(d []byte, off int) (header, bool) {
	if off+2 > len(d) {
		return header{}, false
	}
	h := header{meta: d[off], userMeta: d[off+1]}
	p := off + 2
	var n int
	if h.klen, n = binary.Uvarint(d[p:min(p+binary.MaxVarintLen32, len(d))]); n <= 0 {
		return header{}, false
	}
	p += n
	if h.vlen, n = binary.Uvarint(d[p:min(p+binary.MaxVarintLen32, len(d))]); n <= 0 {
		return header{}, false
	}
	p += n
	if h.expires, n = binary.Uvarint(d[p:min(p+binary.MaxVarintLen64, len(d))]); n <= 0 {
		return header{}, false
	}
	p += n
	if h.klen > maxKeySize || h.vlen > 1<<31 {
		return header{}, false
	}
	h.hlen = p - off
	h.total = h.hlen + int(h.klen) + int(h.vlen) + 4
	return h, true
}

func parseEntry(d []byte, off int) (Entry, int, error) {
	h, ok := parseHeader(d, off)
	if !ok {
		return Entry{}, 0, fmt.Errorf("malformed entry header at byte %d", off)
	}
	if h.total > len(d)-off {
		return Entry{}, 0, fmt.Errorf("entry at byte %d claims %d bytes, the file ends after %d", off, h.total, len(d)-off)
	}
	body := d[off : off+h.total-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(d[off+h.total-4:]) {
		return Entry{}, 0, fmt.Errorf("checksum mismatch in the %d-byte entry at byte %d", h.total, off)
	}
	if h.klen < 8 {
		return Entry{}, 0, fmt.Errorf("entry at byte %d has a %d-byte key, too short for a version", off, h.klen)
	}
	k := body[h.hlen : h.hlen+int(h.klen)]
	return Entry{Key: k, Value: body[h.hlen+int(h.klen):], Meta: h.meta, ExpiresAt: h.expires, Offset: int64(off)}, h.total, nil
}

// readableKey returns the key of the entry header at off if it lies within d.
func readableKey(d []byte, off int) []byte {
	h, ok := parseHeader(d, off)
	if !ok || h.klen < 9 || off+h.hlen+int(h.klen) > len(d) {
		return nil
	}
	return d[off+h.hlen : off+h.hlen+int(h.klen)]
}

// skipDamagedTxn handles damage that left the entry's length intact: it
// walks the entries after it to where the damaged transaction ends, and
// returns that offset, or -1. ts is the version of the transaction the
// damaged entry is inside, or 0 if it begins one; then the entries after
// it say the version, as the damaged entry's own may be what was damaged.
func skipDamagedTxn(d []byte, off, last int, ts uint64) int {
	h, ok := parseHeader(d, off)
	if !ok || off+h.total > last+1 {
		return -1
	}
	inside := ts != 0
	for p := off + h.total; p <= last; {
		e, n, err := parseEntry(d, p)
		if err != nil {
			return -1
		}
		switch {
		case e.Meta&bitFinTxn != 0:
			if v, err := strconv.ParseUint(string(e.Value), 10, 64); err != nil || ts != 0 && v != ts {
				return -1
			}
			return p + n
		case e.Meta&bitTxn != 0 && ts == 0:
			ts = version(e.Key)
		case e.Meta&bitTxn != 0 && version(e.Key) != ts && inside:
			return p // the damaged entry was the end marker
		case e.Meta&bitTxn != 0 && version(e.Key) != ts:
			return -1
		case e.Meta&bitTxn == 0 && ts != 0:
			return p
		}
		p += n
	}
	return -1
}

// resync returns where the first whole transaction after damage at from
// begins: just after the first verifying end marker in d[from:last], or at
// the first verifying entry of another version than ts, the damaged
// transaction's (0 if unknown: then the first verifying entry of a
// transaction says it). It returns -1 if there is none. Stopping only at
// end markers would skip the transaction after a damaged end marker too.
func resync(d []byte, from, last int, ts uint64) int {
	for off := from; off <= last; off++ {
		e, n, err := parseEntry(d, off)
		if err != nil {
			continue
		}
		switch {
		case e.Meta&bitFinTxn != 0:
			if _, err := strconv.ParseUint(string(e.Value), 10, 64); err == nil {
				return off + n
			}
		case e.Meta&bitTxn != 0 && ts == 0:
			ts = version(e.Key)
		case e.Meta&bitTxn != 0 && version(e.Key) != ts:
			return off
		}
		off += n - 1
	}
	return -1
}

// version is badger's version suffix of a key (math.MaxUint64 - ts, BE).
func version(key []byte) uint64 {
	if len(key) < 8 {
		return 0
	}
	return ^binary.BigEndian.Uint64(key[len(key)-8:])
}

// UserKey strips badger's version suffix.
func UserKey(key []byte) []byte {
	if len(key) < 8 {
		return nil
	}
	return key[:len(key)-8]
}

// Version returns the commit version a key carries.
func Version(key []byte) uint64 { return version(key) }

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// lastNonZero returns the index of the last non-zero byte of d at or after
// from, or from-1. Preallocated logs are mostly zeros; this scans them from
// the end in large strides.
func lastNonZero(d []byte, from int) int {
	const stride = 64 << 10
	end := len(d)
	for end > from {
		lo := max(from, end-stride)
		if !allZero(d[lo:end]) {
			for i := end - 1; i >= lo; i-- {
				if d[i] != 0 {
					return i
				}
			}
		}
		end = lo
	}
	return from - 1
}

func baseName(path string) string {
	if i := bytes.LastIndexByte([]byte(path), '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// mapFile maps path read-only. An empty file maps to nil.
func mapFile(path string) ([]byte, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, func() {}, nil
	}
	if st.Size() > 1<<40 {
		return nil, nil, fmt.Errorf("%s: %d bytes is not a log file", path, st.Size())
	}
	// badger preallocates its logs as sparse files of twice their nominal
	// size; what lies past the last data extent is a hole (zeros), and
	// reading it would only fault in zero pages.
	size := dataEnd(f, st.Size())
	if size == 0 {
		return nil, func() {}, nil
	}
	d, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		// Fall back to reading (file systems without mmap).
		b, rerr := io.ReadAll(io.NewSectionReader(f, 0, size))
		if rerr != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return b, func() {}, nil
	}
	return d, func() { _ = unix.Munmap(d) }, nil
}

// CheckLogHeader checks only the header of a log file, which badger reads
// from every value log on open (and refuses an empty one, after growing it).
func CheckLogHeader(path string) *Damage {
	f, err := os.Open(path)
	if err != nil {
		return &Damage{File: baseName(path), What: err.Error()}
	}
	defer f.Close()
	var b [headerSize]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil {
		return &Damage{File: baseName(path), What: fmt.Sprintf("%d bytes, too short for the %d-byte log header", n, headerSize)}
	}
	if id := binary.BigEndian.Uint64(b[:]); id != 0 {
		return &Damage{File: baseName(path), What: fmt.Sprintf("log header names encryption key %d, and the store is not encrypted", id)}
	}
	return nil
}

// dataEnd returns the end of the last data extent of f (size when the file
// system cannot tell).
func dataEnd(f *os.File, size int64) int64 {
	end := int64(0)
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				return end
			}
			return size
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return size
		}
		end, off = hole, hole
	}
	return min(end, size)
}
