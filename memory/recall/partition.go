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
	ns       string
	dims     int
	vecs     []float32
	docs     []uint32 // position -> document number
	graph    *hnsw.Graph
	building bool
	// graphStored: graph is the one in its snapshot file, so Close need
	// not write it again. It and glog, the graph's insertion log
	// (graphfile.go; nil: none), are written under mu, or under its read
	// lock by the goroutine that checkpoints, which alone reads them so.
	graphStored bool
	glog        *graphLog
	// resume is a graph restored after a crash that lacks the vectors at
	// missing; build links them and publishes it.
	resume  *hnsw.Graph
	missing []uint32
	staged  []staged // guarded by the Index's mutex, not mu
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

// build links the partition's vectors into a new graph — or the vectors a
// restored graph lacks into it — with one worker per CPU, logging each
// insertion, without blocking searches or ingestion; then links what
// arrived meanwhile and publishes it. The vectors it reads are a snapshot:
// appends never write to positions that already hold a vector.
func (p *partition) build(ctx context.Context, x *Index, cfg hnsw.Config) {
	p.mu.Lock()
	n, d := len(p.docs), p.dims
	vecs := p.vecs[: n*d : n*d]
	docs := p.docs[:n:n]
	g, missing := p.resume, p.missing
	p.resume, p.missing = nil, nil
	l := p.glog // a resumed graph's, opened by loadGraph
	p.mu.Unlock()
	vec := func(i uint32) []float32 { return vecs[int(i)*d : (int(i)+1)*d] }
	logID := func(pos uint32) uint32 { return docs[pos] }
	var err error
	if g != nil {
		if l != nil {
			g.SetLog(l, logID)
		}
		err = resumeBuild(ctx, g, vec, missing)
	} else {
		if l = x.startGraphLog(p); l != nil {
			cfg.Log, cfg.LogID = l, logID
		}
		p.mu.Lock()
		p.glog = l
		p.mu.Unlock()
		ids := make([]uint32, n)
		for i := range ids {
			ids[i] = uint32(i)
		}
		g, err = hnsw.Build(ctx, cfg, vec, ids, runtime.GOMAXPROCS(0))
	}
	if err != nil {
		return // closing
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g.SetVectors(p.vecAt)
	if l != nil {
		g.SetLog(l, func(pos uint32) uint32 { return p.docs[pos] })
	}
	for pos := n; pos < len(p.docs); pos++ {
		g.Add(uint32(pos))
	}
	p.graph, p.building, p.graphStored = g, false, false
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
