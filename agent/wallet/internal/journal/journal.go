// Package journal is the append-only, checksummed, fsynced record file under
// the wallet's durable state: the spend ledger, the idempotency journal of EVM
// payments and the x402 replay guard.
//
// Each record is one line: eight hex digits of the CRC-32C of the payload, a
// space, the payload (JSON without newlines) and '\n'. Opening replays every
// record. A last line that was cut short by a crash (no '\n') was never
// acknowledged, so it is dropped and the file truncated before it; any other
// damage (a bad checksum, a line that is not a record) refuses the open with
// the file and line, because acting on a partial money ledger is worse than
// not starting.
//
// Appends are group-committed: Append buffers a record and returns its
// sequence number; Sync(seq) returns once that record is on disk, and one
// fsync covers every record buffered before it. A caller therefore updates
// its own state and calls Append under its own lock (so the file order is the
// order of its state changes), then calls Sync without that lock.
//
// Lock order: the caller's lock → File.mu. File.syncMu is taken with no
// caller lock held, and File.mu is taken inside it only briefly.
package journal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/depai/depai/internal/atomicfile"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// File is one open journal. Its methods are safe for concurrent use.
type File struct {
	path string

	syncMu sync.Mutex // serialises write+fsync; held without mu
	synced uint64     // highest sequence number on disk; guarded by syncMu

	mu   sync.Mutex
	f    *os.File
	buf  []byte // records appended but not yet written
	seq  uint64 // sequence number of the last appended record
	err  error  // first write or sync failure; the file is unusable after it
	done bool
}

// ErrClosed is returned by every method once Close was called.
var ErrClosed = errors.New("journal: closed")

// Open opens (creating if needed, 0600 in a 0700 directory) the journal at
// path and calls replay for every record in order. line is 1-based. An error
// from replay aborts the open and is returned wrapped with path:line.
func Open(path string, replay func(line int, payload []byte) error) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: create directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	good, err := replayAll(path, f, replay)
	if err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: stat %s: %w", path, err)
	}
	if st.Size() != good {
		// A torn tail from a crash mid-append: it was never acknowledged.
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: drop torn tail of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: sync %s: %w", path, err)
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: seek %s: %w", path, err)
	}
	return &File{path: path, f: f}, nil
}

// replayAll returns the length of the prefix of whole records.
func replayAll(path string, f *os.File, replay func(int, []byte) error) (int64, error) {
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	for line := 1; ; line++ {
		raw, err := r.ReadBytes('\n')
		if err == io.EOF {
			return off, nil // raw (if any) is a torn tail
		}
		if err != nil {
			return 0, fmt.Errorf("journal: read %s: %w", path, err)
		}
		payload, perr := decode(raw[:len(raw)-1])
		if perr != nil {
			return 0, fmt.Errorf("journal: %s:%d: %w (the file is damaged; restore it from a backup or move it away to start with an empty ledger)", path, line, perr)
		}
		if err := replay(line, payload); err != nil {
			return 0, fmt.Errorf("journal: %s:%d: %w", path, line, err)
		}
		off += int64(len(raw))
	}
}

func decode(line []byte) ([]byte, error) {
	if len(line) < 10 || line[8] != ' ' {
		return nil, fmt.Errorf("not a record (want 8 hex digits of CRC-32C, a space and a payload, got %q)", clip(line))
	}
	var want uint32
	if _, err := fmt.Sscanf(string(line[:8]), "%08x", &want); err != nil {
		return nil, fmt.Errorf("bad checksum field %q", line[:8])
	}
	payload := line[9:]
	if got := crc32.Checksum(payload, castagnoli); got != want {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	return payload, nil
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// Encode returns the on-disk line for payload.
func Encode(payload []byte) []byte {
	line := make([]byte, 0, len(payload)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(payload, castagnoli))
	line = append(line, payload...)
	return append(line, '\n')
}

// Append buffers one record and returns its sequence number for Sync. The
// payload must not contain '\n'.
func (j *File) Append(payload []byte) (uint64, error) {
	if bytes.IndexByte(payload, '\n') >= 0 {
		return 0, errors.New("journal: payload contains a newline")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return 0, ErrClosed
	}
	if j.err != nil {
		return 0, j.err
	}
	j.buf = append(j.buf, Encode(payload)...)
	j.seq++
	return j.seq, nil
}

// Sync returns once the record with sequence number seq (and every one
// before it) is on disk.
func (j *File) Sync(seq uint64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= seq {
		return nil
	}
	j.mu.Lock()
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		return err
	}
	if j.done {
		j.mu.Unlock()
		return ErrClosed
	}
	buf, upto := j.buf, j.seq
	j.buf = nil
	f := j.f
	j.mu.Unlock()

	_, err := f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		err = fmt.Errorf("journal: write %s: %w", j.path, err)
		j.mu.Lock()
		j.err = err
		j.mu.Unlock()
		return err
	}
	j.synced = upto
	return nil
}

// AppendSync appends one record and waits until it is durable.
func (j *File) AppendSync(payload []byte) error {
	seq, err := j.Append(payload)
	if err != nil {
		return err
	}
	return j.Sync(seq)
}

// Rewrite replaces the whole file with payloads (compaction): it writes a
// temporary file, fsyncs it, renames it over the journal and fsyncs the
// directory, so a crash leaves either the old or the new file. Records
// appended but not synced before Rewrite are discarded, so the caller holds
// its own lock across Rewrite and builds payloads from its current state.
func (j *File) Rewrite(payloads [][]byte) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return ErrClosed
	}
	if j.err != nil {
		return j.err
	}
	tmp := j.path + ".tmp"
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: compact %s: %w", j.path, err)
	}
	w := bufio.NewWriter(nf)
	for _, p := range payloads {
		w.Write(Encode(p))
	}
	err = w.Flush()
	if err == nil {
		err = nf.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(j.path))
	}
	if err != nil {
		nf.Close()
		os.Remove(tmp)
		return fmt.Errorf("journal: compact %s: %w", j.path, err)
	}
	j.f.Close()
	j.f = nf
	j.buf = nil
	j.synced = j.seq
	return nil
}

// Close writes and syncs what is buffered and closes the file. It is
// idempotent.
func (j *File) Close() error {
	j.mu.Lock()
	seq := j.seq
	j.mu.Unlock()
	serr := j.Sync(seq)
	if errors.Is(serr, ErrClosed) {
		serr = nil
	}
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return nil
	}
	j.done = true
	if err := j.f.Close(); err != nil && serr == nil {
		serr = fmt.Errorf("journal: close %s: %w", j.path, err)
	}
	return serr
}
