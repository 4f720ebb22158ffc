// Package recording records a sensor's byte stream — gpsd JSON, NMEA,
// NTRIP/RTCM3 — with the time each chunk arrived, and plays it back at real
// or accelerated speed as the plugin's input, for tests, demos and
// debugging without hardware.
//
// The file format (version 1) is small and append-only, so a recorder
// killed mid-write loses at most its last chunk:
//
//	"DEPAIREC1\n"
//	meta: one line of JSON ({"protocol":"nmea","source":"…","started":"RFC 3339"}) and "\n"
//	chunks, each: uvarint nanoseconds since the previous chunk (the first: since started),
//	              uvarint length (≤ MaxChunk), the bytes, CRC-32 (IEEE, big-endian) of the bytes
//
// A reader refuses a file with the wrong magic, and stops at a chunk whose
// length is out of range or whose CRC fails, with an error saying which
// chunk at which offset.
package recording

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"strings"
	"sync"
	"time"
)

// Magic starts every recording.
const Magic = "DEPAIREC1\n"

// MaxChunk bounds one chunk.
const MaxChunk = 1 << 20

// Meta describes a recording.
type Meta struct {
	Protocol string    `json:"protocol"` // "nmea", "gpsd", "rtcm3" …
	Source   string    `json:"source,omitempty"`
	Started  time.Time `json:"started"`
}

// Chunk is one read as it was recorded.
type Chunk struct {
	At   time.Time
	Data []byte
}

// Writer appends chunks to a recording. Safe for concurrent use.
type Writer struct {
	mu   sync.Mutex
	w    io.Writer
	last time.Time
	buf  []byte
}

// NewWriter writes the header for meta to w.
func NewWriter(w io.Writer, meta Meta) (*Writer, error) {
	if meta.Started.IsZero() {
		return nil, errors.New("recording: meta.Started is zero")
	}
	m, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("recording: meta: %w", err)
	}
	if _, err := io.WriteString(w, Magic+string(m)+"\n"); err != nil {
		return nil, fmt.Errorf("recording: write header: %w", err)
	}
	return &Writer{w: w, last: meta.Started}, nil
}

// Write records p as read at at. Chunks must come in time order; an
// earlier at is recorded as simultaneous with the previous chunk. p longer
// than MaxChunk is split.
func (w *Writer) Write(at time.Time, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(p) > 0 {
		n := min(len(p), MaxChunk)
		d := at.Sub(w.last)
		if d < 0 {
			d = 0
		}
		w.buf = binary.AppendUvarint(w.buf[:0], uint64(d))
		w.buf = binary.AppendUvarint(w.buf, uint64(n))
		w.buf = append(w.buf, p[:n]...)
		w.buf = binary.BigEndian.AppendUint32(w.buf, crc32.ChecksumIEEE(p[:n]))
		if _, err := w.w.Write(w.buf); err != nil {
			return fmt.Errorf("recording: write: %w", err)
		}
		w.last = w.last.Add(d)
		p = p[n:]
	}
	return nil
}

// Tee returns a reader that reads r and records every read with the time
// it returned (now()).
func Tee(r io.Reader, w *Writer, now func() time.Time) *TeeReader {
	return &TeeReader{r: r, w: w, now: now}
}

// TeeReader is a reader being recorded.
type TeeReader struct {
	r   io.Reader
	w   *Writer
	now func() time.Time
	err error
}

// Read reads and records.
func (t *TeeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && t.err == nil {
		// A recording that fails to write must not break the live stream;
		// it stops, and Err says why.
		t.err = t.w.Write(t.now(), p[:n])
	}
	return n, err
}

// Err is why recording stopped, or nil.
func (t *TeeReader) Err() error { return t.err }

// CorruptError is a recording that cannot be read past some chunk.
type CorruptError struct {
	Chunk  int   // 0-based index of the bad chunk
	Offset int64 // its byte offset in the file
	Msg    string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("recording: chunk %d at byte %d: %s", e.Chunk, e.Offset, e.Msg)
}

// Open reads the header of a recording and returns its meta and its chunks.
// The chunk sequence ends at EOF, or after yielding a *CorruptError (a
// truncated last chunk included) or a read error.
func Open(r io.Reader) (Meta, iter.Seq2[Chunk, error], error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return Meta{}, nil, fmt.Errorf("recording: not a depai recording (want it to start with %q)", strings.TrimSpace(Magic))
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return Meta{}, nil, fmt.Errorf("recording: meta line: %w", err)
	}
	var meta Meta
	if err := json.Unmarshal([]byte(line), &meta); err != nil || meta.Started.IsZero() {
		return Meta{}, nil, fmt.Errorf("recording: meta line %q: want JSON with protocol and started", strings.TrimSpace(line))
	}
	off := int64(len(Magic) + len(line))
	seq := func(yield func(Chunk, error) bool) {
		at := meta.Started
		cr := &countReader{r: br, n: off}
		for i := 0; ; i++ {
			start := cr.n
			bad := func(msg string) { yield(Chunk{}, &CorruptError{Chunk: i, Offset: start, Msg: msg}) }
			d, err := binary.ReadUvarint(cr)
			if err == io.EOF {
				return
			}
			if err != nil {
				bad("truncated or bad time delta")
				return
			}
			n, err := binary.ReadUvarint(cr)
			if err != nil {
				bad("truncated or bad length")
				return
			}
			if n > MaxChunk || d > uint64(1<<62) {
				bad(fmt.Sprintf("length %d or delta %d out of range", n, d))
				return
			}
			data := make([]byte, n+4)
			if _, err := io.ReadFull(cr, data); err != nil {
				bad(fmt.Sprintf("truncated: %d bytes expected", n+4))
				return
			}
			if crc32.ChecksumIEEE(data[:n]) != binary.BigEndian.Uint32(data[n:]) {
				bad("CRC-32 mismatch")
				return
			}
			at = at.Add(time.Duration(d))
			if !yield(Chunk{At: at, Data: data[:n]}, nil) {
				return
			}
		}
	}
	return meta, seq, nil
}

type countReader struct {
	r *bufio.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// Play returns a reader of the recording's bytes, each chunk released at
// its recorded time divided by speed (speed 0: as fast as read). Reading
// ends with io.EOF at the end of the recording, with the *CorruptError
// where it is damaged, or with ctx's error when ctx ends.
func Play(ctx context.Context, chunks iter.Seq2[Chunk, error], speed float64) io.Reader {
	next, stop := iter.Pull2(chunks)
	return &player{ctx: ctx, next: next, stop: stop, speed: speed}
}

type player struct {
	ctx       context.Context
	next      func() (Chunk, error, bool)
	stop      func()
	speed     float64
	pending   []byte
	first     time.Time
	wallStart time.Time
	err       error
}

func (p *player) Read(b []byte) (int, error) {
	for len(p.pending) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		c, err, ok := p.next()
		switch {
		case !ok:
			p.err = io.EOF
			p.stop()
			continue
		case err != nil:
			p.err = err
			p.stop()
			continue
		}
		if p.speed > 0 {
			if p.first.IsZero() {
				p.first, p.wallStart = c.At, time.Now()
			}
			due := p.wallStart.Add(time.Duration(float64(c.At.Sub(p.first)) / p.speed))
			if wait := time.Until(due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-p.ctx.Done():
					t.Stop()
					p.err = p.ctx.Err()
					p.stop()
					continue
				case <-t.C:
				}
			}
		}
		if p.ctx.Err() != nil {
			p.err = p.ctx.Err()
			p.stop()
			continue
		}
		p.pending = c.Data
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}
