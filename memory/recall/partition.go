package recall

import (
	"context"
	"runtime"
	"sync"

	"github.com/depai/depai/memory/recall/internal/hnsw"
	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// partition holds the vectors of one namespace, normalized and laid end to
// end, searched by exact scan until its HNSW graph is built.
type partition struct {
	mu       sync.RWMutex
	dims     int
	vecs     []float32
	docs     []uint32 // position -> document number
	graph    *hnsw.Graph
	building bool
	// graphStored: graph is the one stored in the index's badger, so Close
	// need not write it again.
	graphStored bool
	staged      []staged // guarded by the Index's mutex, not mu
}

type staged struct {
	doc uint32
	vec []float32
}

func (p *partition) vecAt(i uint32) []float32 {
	return p.vecs[int(i)*p.dims : (int(i)+1)*p.dims]
}

// addLocked appends v for doc and returns its position. Called with p.mu held.
func (p *partition) addLocked(doc uint32, v []float32) uint32 {
	p.vecs = append(p.vecs, v...)
	p.docs = append(p.docs, doc)
	pos := uint32(len(p.docs) - 1)
	if p.graph != nil {
		p.graph.Add(pos)
		p.graphStored = false
	}
	return pos
}

// build links the partition's vectors into a new graph with one worker per
// CPU, without blocking searches or ingestion, then links what arrived
// meanwhile and publishes it. The vectors it reads are a snapshot: appends
// never write to positions that already hold a vector.
func (p *partition) build(ctx context.Context, cfg hnsw.Config) {
	p.mu.RLock()
	n, d := len(p.docs), p.dims
	vecs := p.vecs[: n*d : n*d]
	p.mu.RUnlock()
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	g, err := hnsw.Build(ctx, cfg, func(i uint32) []float32 { return vecs[int(i)*d : (int(i)+1)*d] }, ids, runtime.GOMAXPROCS(0))
	if err != nil {
		return // closing
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g.SetVectors(p.vecAt)
	for pos := n; pos < len(p.docs); pos++ {
		g.Add(uint32(pos))
	}
	p.graph, p.building = g, false
}

// search returns the k best documents, as document numbers.
func (p *partition) search(q []float32, k int, keep func(uint32) bool, ef int) []vecscan.Result {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(q) != p.dims {
		return nil
	}
	keepPos := func(i uint32) bool { return keep(p.docs[i]) }
	var res []vecscan.Result
	if p.graph != nil {
		res = p.graph.Search(q, k, ef, keepPos)
	}
	// Without a graph, or when a selective filter left the graph short of k, scan.
	if p.graph == nil || (len(res) < k && len(res) < len(p.docs)) {
		res = vecscan.Search(p.vecs, p.dims, q, k, keepPos)
	}
	for i := range res {
		res[i].ID = p.docs[res[i].ID]
	}
	return res
}
