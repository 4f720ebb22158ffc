package hnsw

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"slices"
)

// Persistence. A snapshot (Save) holds the whole graph; the log (Config.Log)
// holds one record per insertion after it. Both are sequences of frames:
//
//	payload length u32 LE | CRC-32C of the payload u32 LE | payload
//
// A snapshot's payload, read across its frames, is a header (snapMagic,
// then uvarints: node count, entry node, top layer, M, dimensions) and per
// node its ID, its top layer and per layer its link count and links, all
// uvarints; links are node numbers. A log record is one frame: uvarints
// node number, ID, top layer, and per layer the count and links. Vectors
// are not saved: Load quantizes them again from the caller's.

// ErrCorrupt reports a snapshot that does not decode.
var ErrCorrupt = errors.New("hnsw: corrupt saved graph")

const (
	snapMagic = "depai-hnsw-1"
	frameMax  = 64 << 10
	maxLevel  = 16
	// maxHoles bounds the nodes a log may skip, so that a damaged one
	// cannot make Load allocate more than it holds.
	maxHoles = 4096
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func appendFrame(b, payload []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
	return append(b, payload...)
}

// Save writes a snapshot of the graph to w, with every caller's ID mapped
// through id (nil: as they are). A log written by this graph from now on
// continues the snapshot; records from before it are skipped on Load.
func (g *Graph) Save(w io.Writer, id func(uint32) uint32) error {
	if id == nil {
		id = func(x uint32) uint32 { return x }
	}
	bw := bufio.NewWriterSize(w, frameMax+16)
	var frame []byte
	payload := make([]byte, 0, frameMax+1024)
	flush := func() error {
		frame = appendFrame(frame[:0], payload)
		payload = payload[:0]
		_, err := bw.Write(frame)
		return err
	}
	payload = append(payload, snapMagic...)
	for _, v := range []int{g.Len(), int(g.entry), g.maxLayer, g.cfg.M, g.dims} {
		payload = binary.AppendUvarint(payload, uint64(v))
	}
	for n := range g.Len() {
		payload = g.appendNode(payload, uint32(n), id)
		if len(payload) >= frameMax {
			if err := flush(); err != nil {
				return fmt.Errorf("hnsw: save: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("hnsw: save: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("hnsw: save: %w", err)
	}
	return nil
}

// appendNode appends node n's ID, top layer and links. Called with no node
// locks held; during a parallel Build it takes each list's lock.
func (g *Graph) appendNode(b []byte, n uint32, id func(uint32) uint32) []byte {
	lv := g.level(n)
	b = binary.AppendUvarint(b, uint64(id(g.ext[n])))
	b = binary.AppendUvarint(b, uint64(lv))
	var buf []uint32
	for l := 0; l <= lv; l++ {
		buf = g.neighbors(n, l, buf)
		b = binary.AppendUvarint(b, uint64(len(buf)))
		for _, x := range buf {
			b = binary.AppendUvarint(b, uint64(x))
		}
	}
	return b
}

// logInsert appends node n's record to the log.
func (g *Graph) logInsert(n uint32, level int) {
	if g.cfg.Log == nil {
		return
	}
	id := g.cfg.LogID
	if id == nil {
		id = func(x uint32) uint32 { return x }
	}
	p := binary.AppendUvarint(make([]byte, 0, 8+4*(2*g.cfg.M+2)*(level+1)), uint64(n))
	p = g.appendNode(p, n, id)
	rec := appendFrame(make([]byte, 0, len(p)+8), p)
	g.logMu.Lock()
	defer g.logMu.Unlock()
	if g.logErr != nil {
		return
	}
	if _, err := g.cfg.Log.Write(rec); err != nil {
		g.logErr = fmt.Errorf("hnsw: log: %w", err)
	}
}

// SetLog makes the graph append a record of every insertion from now on to
// w, with IDs mapped through id (see Config.Log); nil w stops logging.
// Callers serialize it with Add.
func (g *Graph) SetLog(w io.Writer, id func(uint32) uint32) {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	g.cfg.Log, g.cfg.LogID, g.logErr = w, id, nil
}

// LogErr reports the error that stopped the log, if one did.
func (g *Graph) LogErr() error {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	return g.logErr
}

// Restored says what Load found.
type Restored struct {
	Snapshot int // nodes read from the snapshot
	Logged   int // nodes read from the log
	// Dropped counts nodes left out: remap refused their IDs, or their log
	// record was lost. The caller adds their vectors again.
	Dropped int
	// LogDamaged: the log ended in a partial or damaged record (a crash
	// while writing it, or damage); Load ignored it and what followed.
	LogDamaged bool
}

// frameReader reads frames and hands out their payloads as one stream.
type frameReader struct {
	r   *bufio.Reader
	cur []byte
	n   int // frames read
}

var errBadFrame = errors.New("partial or damaged frame")

// frame reads the next frame's payload: io.EOF at a clean end, errBadFrame
// for a partial or damaged one.
func (f *frameReader) frame() ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, errBadFrame
	}
	size, sum := binary.LittleEndian.Uint32(hdr[:]), binary.LittleEndian.Uint32(hdr[4:])
	if size > 4*frameMax {
		return nil, errBadFrame
	}
	p := make([]byte, size)
	if _, err := io.ReadFull(f.r, p); err != nil || crc32.Checksum(p, crcTable) != sum {
		return nil, errBadFrame
	}
	f.n++
	return p, nil
}

func (f *frameReader) ReadByte() (byte, error) {
	for len(f.cur) == 0 {
		p, err := f.frame()
		if err != nil {
			return 0, err
		}
		f.cur = p
	}
	c := f.cur[0]
	f.cur = f.cur[1:]
	return c, nil
}

// raw is a graph being decoded: nodes by saved number, before renumbering.
type raw struct {
	m, m0  int
	ext    []uint32
	level  []int8 // -1: no record
	links  [][]uint32
	logged []uint32 // nodes from the log, in log order
}

// readNode decodes one node's ID, top layer and links from r into node n.
func (rw *raw) readNode(r io.ByteReader, n int) error {
	next := func() (uint64, error) { return binary.ReadUvarint(r) }
	ext, err := next()
	if err != nil {
		return err
	}
	lv, err := next()
	if err != nil {
		return err
	}
	if ext > 1<<32-1 || lv > maxLevel {
		return fmt.Errorf("node %d: ID %d, top layer %d", n, ext, lv)
	}
	for n >= len(rw.ext) {
		rw.ext = append(rw.ext, 0)
		rw.level = append(rw.level, -1)
		rw.links = append(rw.links, nil)
	}
	if rw.level[n] >= 0 {
		return fmt.Errorf("node %d saved twice", n)
	}
	var links []uint32
	for l := range int(lv) + 1 {
		cnt, err := next()
		if err != nil {
			return err
		}
		width := rw.m
		if l == 0 {
			width = rw.m0
		}
		if cnt > uint64(width) {
			return fmt.Errorf("node %d: %d links on layer %d, at most %d", n, cnt, l, width)
		}
		links = append(links, uint32(cnt))
		for range cnt {
			x, err := next()
			if err != nil {
				return err
			}
			if x > 1<<32-1 {
				return fmt.Errorf("node %d links to %d", n, x)
			}
			links = append(links, uint32(x))
		}
	}
	rw.ext[n], rw.level[n], rw.links[n] = uint32(ext), int8(lv), links
	return nil
}

// Load restores a graph from a snapshot written by Save (nil: none) and the
// log written after it (nil: none), reading vectors through vec. remap maps
// each saved ID to the caller's ID; nodes it refuses are left out, their
// neighbours keep their other links, and Restored counts them. A snapshot
// that does not decode is ErrCorrupt; a log that ends in a partial or
// damaged record is read up to it. The graph's node numbers are new when
// Restored counts logged or dropped nodes, so the caller then saves a new
// snapshot before it appends to a log again (SetLog); Config.Log is not
// used by Load.
func Load(cfg Config, vec func(uint32) []float32, snap, log io.Reader, remap func(uint32) (uint32, bool)) (*Graph, Restored, error) {
	cfg.Log, cfg.LogID = nil, nil
	g := New(cfg, vec)
	rw := &raw{m: g.cfg.M, m0: 2 * g.cfg.M}
	var st Restored
	entry := -1
	if snap != nil {
		fr := &frameReader{r: bufio.NewReaderSize(snap, frameMax+16)}
		e, err := rw.readSnapshot(fr, g.cfg.M)
		if err != nil {
			return nil, st, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		entry, st.Snapshot = e, len(rw.ext)
	}
	if log != nil {
		st.LogDamaged = rw.readLog(log, st.Snapshot)
		st.Logged = len(rw.logged)
	}
	g.restore(rw, entry, remap, &st)
	return g, st, nil
}

// readSnapshot decodes a snapshot into rw and returns its entry node.
func (rw *raw) readSnapshot(fr *frameReader, m int) (int, error) {
	magic := make([]byte, len(snapMagic))
	for i := range magic {
		c, err := fr.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("header: %v", err)
		}
		magic[i] = c
	}
	if string(magic) != snapMagic {
		return 0, fmt.Errorf("header %q, want %q", magic, snapMagic)
	}
	var hdr [5]uint64
	for i := range hdr {
		v, err := binary.ReadUvarint(fr)
		if err != nil {
			return 0, fmt.Errorf("header: %v", err)
		}
		hdr[i] = v
	}
	n, entry, top, sm := hdr[0], hdr[1], hdr[2], hdr[3]
	if n > 1<<32-1 || (n > 0 && entry >= n) || top > maxLevel || sm != uint64(m) {
		return 0, fmt.Errorf("header: %d nodes, entry %d, top layer %d, M %d (this graph has M %d)", n, entry, top, sm, m)
	}
	for i := range int(n) {
		if err := rw.readNode(fr, i); err != nil {
			return 0, err
		}
	}
	if len(fr.cur) != 0 {
		return 0, fmt.Errorf("%d bytes after the last node", len(fr.cur))
	}
	if _, err := fr.frame(); err != io.EOF {
		return 0, errors.New("data after the last node")
	}
	if n > 0 && int(rw.level[entry]) != int(top) {
		return 0, fmt.Errorf("entry node %d is not on the top layer %d", entry, top)
	}
	return int(entry), nil
}

// readLog decodes log records into rw, skipping those of nodes the
// snapshot holds (written before it), and reports whether it stopped at a
// partial or damaged record.
func (rw *raw) readLog(log io.Reader, snapN int) bool {
	fr := &frameReader{r: bufio.NewReaderSize(log, frameMax+16)}
	holes := 0 // nodes below the highest read without a record yet
	for {
		p, err := fr.frame()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true
		}
		br := byteReader{p}
		n, err := binary.ReadUvarint(&br)
		// Records arrive in the order insertions finished, which a parallel
		// insertion keeps close to node order: a record leaves holes for
		// the insertions still running, a few per worker. More is damage.
		if err != nil || n > 1<<31 {
			return true
		}
		if int(n) < snapN {
			continue
		}
		gap := max(int(n)-len(rw.ext), 0)
		if holes+gap > maxHoles {
			return true
		}
		filled := int(n) < len(rw.ext) && rw.level[n] < 0
		if err := rw.readNode(&br, int(n)); err != nil || len(br.b) != 0 {
			return true
		}
		holes += gap
		if filled {
			holes--
		}
		rw.logged = append(rw.logged, uint32(n))
	}
}

type byteReader struct{ b []byte }

func (r *byteReader) ReadByte() (byte, error) {
	if len(r.b) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// restore fills g from rw: the nodes remap accepts, renumbered in order,
// their links to nodes left out dropped, quantized from the caller's
// vectors; then the back-links of logged nodes, as their insertion made.
func (g *Graph) restore(rw *raw, entry int, remap func(uint32) (uint32, bool), st *Restored) {
	if remap == nil {
		remap = func(x uint32) (uint32, bool) { return x, true }
	}
	newID := make([]int32, len(rw.ext))
	var exts []uint32
	var levels []int
	for n := range rw.ext {
		newID[n] = -1
		if rw.level[n] < 0 {
			st.Dropped++
			continue
		}
		ext, ok := remap(rw.ext[n])
		if !ok {
			st.Dropped++
			continue
		}
		newID[n] = int32(len(exts))
		exts = append(exts, ext)
		levels = append(levels, int(rw.level[n]))
	}
	g.grow(exts, levels, runtime.GOMAXPROCS(0))
	top := -1
	for n, links := range rw.links {
		id := newID[n]
		if id < 0 {
			continue
		}
		lv := int(rw.level[n])
		if lv > top || (lv == top && n == entry) {
			top, g.entry, g.maxLayer = lv, uint32(id), lv
		}
		for l := 0; l <= lv; l++ {
			cnt := int(links[0])
			out := g.slot(uint32(id), l)
			k := 0
			for _, x := range links[1 : 1+cnt] {
				if int(x) < len(newID) && newID[x] >= 0 && newID[x] != id && int(rw.level[x]) >= l && !slices.Contains(out[1:1+k], uint32(newID[x])) {
					out[1+k] = uint32(newID[x])
					k++
				}
			}
			out[0] = uint32(k)
			links = links[1+cnt:]
		}
		rw.links[n] = nil
	}
	for _, n := range rw.logged {
		id := newID[n]
		if id < 0 {
			continue
		}
		for l := 0; l <= g.level(uint32(id)); l++ {
			maxN := g.cfg.M
			if l == 0 {
				maxN = 2 * g.cfg.M
			}
			for _, x := range slices.Clone(g.neighbors(uint32(id), l, nil)) {
				g.link(x, uint32(id), l, maxN)
			}
		}
	}
	// Draw levels for later additions from a stream the saved graph did not use.
	g.src.Seed(g.cfg.Seed+uint64(len(rw.ext)), uint64(len(rw.ext)))
}
