// Package hnsw is a hierarchical navigable small world graph (Malkov and
// Yashunin, 2016) for approximate nearest-neighbour search over normalized
// vectors by cosine similarity. It is our own because the HNSW module the Go
// proxy serves here has a recall bug.
//
// The graph does not own vectors: it reads them through a function, by the
// caller's ID, so the caller keeps one copy for both exact scans and the
// graph, and may add its vectors to the graph in any order. A Graph is not
// safe for concurrent use on its own; callers serialize Insert against
// Search (many concurrent Searches are fine).
package hnsw

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// Config tunes a graph. Zero fields take the defaults in brackets. The
// defaults come from clustered synthetic 384-d vectors at 200k: M 16 with
// EfConstruction 100 gave recall@10 0.959 at EfSearch 64 (p50 0.81 ms) and
// fell to 0.82 at 1M; M 24 with EfConstruction 200 gave 0.999 at EfSearch 64
// (p50 0.82 ms) for twice the build time.
type Config struct {
	M              int    // neighbours per node on upper layers; twice this on layer 0 [24]
	EfConstruction int    // candidate list size while inserting [200]
	EfSearch       int    // candidate list size while searching, at least k [64]
	Seed           uint64 // level draws [1]
}

// Graph is an HNSW index over vectors 0..Len()-1.
type Graph struct {
	cfg      Config
	vec      func(uint32) []float32
	ml       float64
	rng      *rand.Rand
	src      *rand.PCG    // rng's source
	links    [][][]uint32 // links[node][layer]
	ext      []uint32     // node -> caller's ID
	entry    uint32
	maxLayer int
	visited  sync.Pool // *visitSet
	// During a parallel Build only: one lock per node's links, and top for
	// entry and maxLayer. Nil otherwise; callers serialize Add and Search.
	locks []sync.Mutex
	top   sync.RWMutex
}

// New returns an empty graph reading vectors through vec.
func New(cfg Config, vec func(uint32) []float32) *Graph {
	if cfg.M <= 0 {
		cfg.M = 24
	}
	if cfg.EfConstruction <= 0 {
		cfg.EfConstruction = 200
	}
	if cfg.EfSearch <= 0 {
		cfg.EfSearch = 64
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	src := rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)
	return &Graph{
		cfg: cfg,
		vec: vec,
		ml:  1 / math.Log(float64(cfg.M)),
		rng: rand.New(src),
		src: src,
	}
}

// Len is the number of vectors in the graph.
func (g *Graph) Len() int { return len(g.links) }

type visitSet struct {
	gen  uint32
	mark []uint32
}

func (g *Graph) getVisited() *visitSet {
	v, _ := g.visited.Get().(*visitSet)
	if v == nil {
		v = &visitSet{}
	}
	if len(v.mark) < len(g.links) {
		v.mark = make([]uint32, len(g.links)+len(g.links)/4+64)
		v.gen = 0
	}
	v.gen++
	if v.gen == 0 { // wrapped: clear stale marks
		clear(v.mark)
		v.gen = 1
	}
	return v
}

// Add links the caller's vector ext into the graph.
func (g *Graph) Add(ext uint32) {
	id := uint32(len(g.links))
	level := g.drawLevel()
	g.ext = append(g.ext, ext)
	g.links = append(g.links, make([][]uint32, level+1))
	if id == 0 {
		g.entry, g.maxLayer = 0, level
		return
	}
	g.insert(id, level)
}

func (g *Graph) drawLevel() int {
	return min(int(-math.Log(1-g.rng.Float64())*g.ml), 16)
}

// Build returns a graph of the caller's ids, inserted by workers goroutines
// in parallel (node locks, as hnswlib does). vec must be safe for concurrent
// use while Build runs. It stops early with ctx's error.
func Build(ctx context.Context, cfg Config, vec func(uint32) []float32, ids []uint32, workers int) (*Graph, error) {
	g := New(cfg, vec)
	n := len(ids)
	if n == 0 {
		return g, nil
	}
	g.ext = slices.Clone(ids)
	g.links = make([][][]uint32, n)
	levels := make([]int, n)
	for i := range levels {
		levels[i] = g.drawLevel()
		g.links[i] = make([][]uint32, levels[i]+1)
	}
	g.entry, g.maxLayer = 0, levels[0]
	g.locks = make([]sync.Mutex, n)
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				g.insert(uint32(i), levels[i])
			}
		})
	}
	wg.Wait()
	g.locks = nil
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return g, nil
}

// SetVectors replaces the function the graph reads vectors through.
func (g *Graph) SetVectors(vec func(uint32) []float32) { g.vec = vec }

// neighbors returns node n's links on layer l; during a parallel Build, a
// copy taken under the node's lock.
func (g *Graph) neighbors(n uint32, l int, buf []uint32) []uint32 {
	if g.locks == nil {
		return g.links[n][l]
	}
	g.locks[n].Lock()
	buf = append(buf[:0], g.links[n][l]...)
	g.locks[n].Unlock()
	return buf
}

// insert links node id, whose links slice has level+1 layers, into the graph.
func (g *Graph) insert(id uint32, level int) {
	q := g.vecOf(id)
	if g.locks != nil {
		g.top.RLock()
	}
	ep, maxLayer := g.entry, g.maxLayer
	if g.locks != nil {
		g.top.RUnlock()
	}
	epDist := g.dist(q, ep)
	var buf []uint32
	for l := maxLayer; l > level; l-- {
		ep, epDist = g.greedy(q, ep, epDist, l, &buf)
	}
	vs := g.getVisited()
	defer g.visited.Put(vs)
	for l := min(level, maxLayer); l >= 0; l-- {
		cands := g.searchLayer(q, ep, epDist, g.cfg.EfConstruction, l, vs, nil, &buf)
		maxN := g.cfg.M
		if l == 0 {
			maxN = 2 * g.cfg.M
		}
		nbrs := g.selectNeighbors(cands, g.cfg.M)
		if g.locks != nil {
			// The graph gets its own copy: other inserters prune id's list in
			// place (under its lock) while this loop reads nbrs.
			g.locks[id].Lock()
			g.links[id][l] = slices.Clone(nbrs)
			g.locks[id].Unlock()
		} else {
			g.links[id][l] = nbrs
		}
		for _, n := range nbrs {
			g.link(n, id, l, maxN)
		}
		ep, epDist = cands[0].id, cands[0].d
		vs.gen++
		if vs.gen == 0 {
			clear(vs.mark)
			vs.gen = 1
		}
	}
	if level > maxLayer {
		if g.locks != nil {
			g.top.Lock()
			defer g.top.Unlock()
		}
		if level > g.maxLayer {
			g.entry, g.maxLayer = id, level
		}
	}
}

func (g *Graph) vecOf(node uint32) []float32 { return g.vec(g.ext[node]) }

// link adds a back-link from n to id on layer l, pruning n's list to maxN
// with the neighbour-selection heuristic when it overflows.
func (g *Graph) link(n, id uint32, l, maxN int) {
	if g.locks != nil {
		g.locks[n].Lock()
		defer g.locks[n].Unlock()
	}
	nl := g.links[n][l]
	if len(nl) < maxN {
		g.links[n][l] = append(nl, id)
		return
	}
	v := g.vecOf(n)
	cands := make([]item, 0, len(nl)+1)
	cands = append(cands, item{id, g.distVec(v, id)})
	for _, x := range nl {
		cands = append(cands, item{x, g.distVec(v, x)})
	}
	sortItems(cands)
	g.links[n][l] = g.selectNeighborsInto(nl[:0], cands, maxN)
}

type item struct {
	id uint32
	d  float32 // distance: 1 - cosine similarity
}

func (g *Graph) dist(q []float32, id uint32) float32 { return 1 - vecscan.Dot(q, g.vecOf(id)) }

func (g *Graph) distVec(v []float32, id uint32) float32 { return 1 - vecscan.Dot(v, g.vecOf(id)) }

// greedy walks layer l to the closest node to q.
func (g *Graph) greedy(q []float32, ep uint32, epDist float32, l int, buf *[]uint32) (uint32, float32) {
	for changed := true; changed; {
		changed = false
		*buf = g.neighbors(ep, l, *buf)
		for _, n := range *buf {
			if d := g.dist(q, n); d < epDist {
				ep, epDist, changed = n, d, true
			}
		}
	}
	return ep, epDist
}

// searchLayer returns up to ef nodes closest to q on layer l, nearest first.
// keep, when not nil, limits by caller's ID which nodes may be returned; every node is
// still traversed, so a filter does not disconnect the graph.
func (g *Graph) searchLayer(q []float32, ep uint32, epDist float32, ef, l int, vs *visitSet, keep func(uint32) bool, buf *[]uint32) []item {
	vs.mark[ep] = vs.gen
	// res keeps negated distances, so its top is the farthest node kept.
	var cand, res minHeap
	cand.push(item{ep, epDist})
	if keep == nil || keep(g.ext[ep]) {
		res.push(item{ep, -epDist})
	}
	for len(cand) > 0 {
		c := cand.pop()
		if len(res) >= ef && c.d > -res[0].d {
			break
		}
		*buf = g.neighbors(c.id, l, *buf)
		for _, n := range *buf {
			if vs.mark[n] == vs.gen {
				continue
			}
			vs.mark[n] = vs.gen
			d := g.dist(q, n)
			if len(res) < ef || d < -res[0].d {
				cand.push(item{n, d})
				if keep == nil || keep(g.ext[n]) {
					res.push(item{n, -d})
					if len(res) > ef {
						res.pop()
					}
				}
			}
		}
	}
	out := make([]item, len(res))
	for i := len(out) - 1; i >= 0; i-- {
		r := res.pop()
		out[i] = item{r.id, -r.d}
	}
	return out
}

// selectNeighbors picks up to m of cands (nearest first) by the paper's
// heuristic: a candidate is kept only if it is closer to the new node than
// to every neighbour already kept, which preserves links between clusters.
func (g *Graph) selectNeighbors(cands []item, m int) []uint32 {
	return g.selectNeighborsInto(make([]uint32, 0, m), cands, m)
}

func (g *Graph) selectNeighborsInto(out []uint32, cands []item, m int) []uint32 {
	kept := make([]item, 0, m)
	for _, c := range cands {
		if len(kept) >= m {
			break
		}
		cv := g.vecOf(c.id)
		good := true
		for _, k := range kept {
			if g.distVec(cv, k.id) < c.d {
				good = false
				break
			}
		}
		if good {
			kept = append(kept, c)
		}
	}
	// Fill up with the nearest pruned candidates so sparse regions keep degree.
	if len(kept) < m {
		for _, c := range cands {
			if len(kept) >= m {
				break
			}
			dup := false
			for _, k := range kept {
				if k.id == c.id {
					dup = true
					break
				}
			}
			if !dup {
				kept = append(kept, c)
			}
		}
	}
	for _, k := range kept {
		out = append(out, k.id)
	}
	return out
}

// Search returns up to k nodes most similar to q, best first, searching with
// a candidate list of max(ef, k) (ef 0: Config.EfSearch). Results carry the
// caller's IDs; keep, when not nil, limits which IDs may be returned.
func (g *Graph) Search(q []float32, k, ef int, keep func(uint32) bool) []vecscan.Result {
	if len(g.links) == 0 || k <= 0 {
		return nil
	}
	if ef <= 0 {
		ef = g.cfg.EfSearch
	}
	ef = max(ef, k)
	ep := g.entry
	epDist := g.dist(q, ep)
	var buf []uint32
	for l := g.maxLayer; l > 0; l-- {
		ep, epDist = g.greedy(q, ep, epDist, l, &buf)
	}
	vs := g.getVisited()
	defer g.visited.Put(vs)
	items := g.searchLayer(q, ep, epDist, ef, 0, vs, keep, &buf)
	if len(items) > k {
		items = items[:k]
	}
	out := make([]vecscan.Result, len(items))
	for i, it := range items {
		out[i] = vecscan.Result{ID: g.ext[it.id], Score: 1 - it.d}
	}
	return out
}

func sortItems(s []item) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].d < s[j-1].d; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

type minHeap []item

func (h *minHeap) push(x item) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].d <= s[i].d {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *minHeap) pop() item {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(s) && s[l].d < s[m].d {
			m = l
		}
		if r := l + 1; r < len(s) && s[r].d < s[m].d {
			m = r
		}
		if m == i {
			break
		}
		s[m], s[i] = s[i], s[m]
		i = m
	}
	*h = s
	return top
}
