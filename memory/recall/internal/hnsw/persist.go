package hnsw

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorrupt reports a saved graph that does not decode.
var ErrCorrupt = errors.New("hnsw: corrupt saved graph")

// MarshalBinary encodes the graph's links and IDs (not its vectors) so a
// restart need not rebuild it: a header, then per node its ID, its layer
// count, and per layer the neighbour count and neighbours, as uvarints.
func (g *Graph) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, len(g.links)*(2*g.cfg.M+8)*3)
	b = binary.AppendUvarint(b, uint64(len(g.links)))
	b = binary.AppendUvarint(b, uint64(g.entry))
	b = binary.AppendUvarint(b, uint64(g.maxLayer))
	for n, layers := range g.links {
		b = binary.AppendUvarint(b, uint64(g.ext[n]))
		b = binary.AppendUvarint(b, uint64(len(layers)))
		for _, l := range layers {
			b = binary.AppendUvarint(b, uint64(len(l)))
			for _, x := range l {
				b = binary.AppendUvarint(b, uint64(x))
			}
		}
	}
	return b, nil
}

// Load decodes a graph saved by MarshalBinary, reading vectors through vec.
func Load(cfg Config, vec func(uint32) []float32, data []byte) (*Graph, error) {
	g := New(cfg, vec)
	next := func() (uint64, error) {
		v, k := binary.Uvarint(data)
		if k <= 0 {
			return 0, fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		data = data[k:]
		return v, nil
	}
	var hdr [3]uint64
	for i := range hdr {
		v, err := next()
		if err != nil {
			return nil, err
		}
		hdr[i] = v
	}
	n, entry, maxLayer := hdr[0], hdr[1], hdr[2]
	if n > uint64(len(data)) || (n > 0 && entry >= n) || maxLayer > 16 {
		return nil, fmt.Errorf("%w: header n=%d entry=%d layers=%d", ErrCorrupt, n, entry, maxLayer)
	}
	g.links = make([][][]uint32, n)
	g.ext = make([]uint32, n)
	for node := range g.links {
		ext, err := next()
		if err != nil {
			return nil, err
		}
		nl, err := next()
		if err != nil {
			return nil, err
		}
		if ext > 1<<32-1 || nl == 0 || nl > maxLayer+1 {
			return nil, fmt.Errorf("%w: node %d", ErrCorrupt, node)
		}
		g.ext[node] = uint32(ext)
		layers := make([][]uint32, nl)
		for l := range layers {
			cnt, err := next()
			if err != nil {
				return nil, err
			}
			if cnt > uint64(len(data)) {
				return nil, fmt.Errorf("%w: node %d layer %d", ErrCorrupt, node, l)
			}
			layers[l] = make([]uint32, cnt)
			for i := range layers[l] {
				x, err := next()
				if err != nil {
					return nil, err
				}
				if x >= n {
					return nil, fmt.Errorf("%w: node %d links to %d of %d", ErrCorrupt, node, x, n)
				}
				layers[l][i] = uint32(x)
			}
		}
		g.links[node] = layers
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(data))
	}
	for node, layers := range g.links {
		for l, links := range layers {
			for _, x := range links {
				if len(g.links[x]) <= l {
					return nil, fmt.Errorf("%w: node %d links on layer %d to node %d, which is not on it", ErrCorrupt, node, l, x)
				}
			}
		}
	}
	g.entry, g.maxLayer = uint32(entry), int(maxLayer)
	if n > 0 && len(g.links[entry]) != int(maxLayer)+1 {
		return nil, fmt.Errorf("%w: entry node %d is not on the top layer", ErrCorrupt, entry)
	}
	// Draw levels for later additions from a stream the saved graph did not use.
	g.src.Seed(g.cfg.Seed+n, n)
	return g, nil
}

// RemapIDs replaces every caller's ID by f(ID); it fails, leaving the graph
// unchanged, if f reports false for any.
func (g *Graph) RemapIDs(f func(uint32) (uint32, bool)) error {
	ext := make([]uint32, len(g.ext))
	for i, id := range g.ext {
		n, ok := f(id)
		if !ok {
			return fmt.Errorf("hnsw: remap: no new ID for %d", id)
		}
		ext[i] = n
	}
	g.ext = ext
	return nil
}
