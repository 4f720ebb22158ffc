// Package hnsw is a hierarchical navigable small world graph (Malkov and
// Yashunin, 2016) for approximate nearest-neighbour search over normalized
// vectors by cosine similarity. It is our own because the HNSW module the Go
// proxy serves here has a recall bug.
//
// The graph walks int8 copies of the vectors that it keeps itself, in one
// contiguous slice (quant.go), with every node's links in fixed-size slots
// of flat slices; it re-ranks its final candidates with the caller's
// float32 vectors, which it reads through a function by the caller's ID, so
// the caller keeps the one float32 copy for both exact scans and the graph,
// and may add its vectors to the graph in any order.
//
// A Graph is not safe for concurrent use on its own; callers serialize Add
// against Search (many concurrent Searches are fine). A graph can append a
// record of every insertion to a log and save snapshots, and Load restores
// one from a snapshot and the log after it (persist.go), so a crash costs
// only the insertions whose records did not reach the disk.
package hnsw

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// Config tunes a graph. Zero fields take the defaults in brackets. The
// defaults come from clustered synthetic 384-d vectors: with float32
// distances, M 16 with EfConstruction 100 gave recall@10 0.959 at 200k and
// fell to 0.82 at 1M, M 24 with EfConstruction 200 gave 0.999 at 200k; with
// int8 traversal and float32 re-ranking, M 24 with EfConstruction 200
// gives 0.999 at 100k at EfSearch 64 (the README has the figures).
type Config struct {
	M              int    // neighbours per node on upper layers; twice this on layer 0 [24]
	EfConstruction int    // candidate list size while inserting [200]
	EfSearch       int    // candidate list size while searching, at least k [64]
	Seed           uint64 // level draws [1]
	// Log, when set, receives a record of every insertion, in the order
	// the insertions finished, for Load to replay (see persist.go). The
	// graph serializes its writes. After a write fails the graph logs no
	// more, and LogErr reports the error.
	Log io.Writer
	// LogID maps the caller's IDs to the IDs logged, e.g. positions to
	// stable record numbers; nil logs the caller's IDs. It must be safe to
	// call from Build's workers.
	LogID func(uint32) uint32
}

// Graph is an HNSW index over vectors 0..Len()-1.
type Graph struct {
	cfg   Config
	vec   func(uint32) []float32
	ml    float64
	rng   *rand.Rand
	src   *rand.PCG // rng's source
	dims  int       // set by the first vector
	codes []int8    // node n's quantized vector at n*dims
	scale []float32 // node n's vector ≈ scale[n] * its codes
	// base holds layer 0: node n's link count, then 2M slots, at n*(2M+1).
	base []uint32
	// upper holds, for nodes above layer 0, per layer from 1 up a link
	// count and M slots.
	upper    map[uint32][]uint32
	ext      []uint32 // node -> caller's ID
	entry    uint32
	maxLayer int
	scratch  sync.Pool // *scratch
	// During a parallel Build only: one lock per node's links, and top for
	// entry and maxLayer. Nil otherwise; callers serialize Add and Search.
	locks []sync.Mutex
	top   sync.RWMutex
	// logMu serializes log writes; no other lock is taken while it is held.
	logMu  sync.Mutex
	logErr error
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
		cfg:   cfg,
		vec:   vec,
		ml:    1 / math.Log(float64(cfg.M)),
		rng:   rand.New(src),
		src:   src,
		upper: map[uint32][]uint32{},
	}
}

// Len is the number of vectors in the graph.
func (g *Graph) Len() int { return len(g.ext) }

// BytesPerVector is the graph's own memory per vector (quantized codes,
// scale, ID, layer-0 slots), not counting the caller's float32 vectors or
// the few upper-layer nodes.
func (g *Graph) BytesPerVector() int { return g.dims + 4 + 4 + 4*(2*g.cfg.M+1) }

// scratch is per-search working memory, pooled.
type scratch struct {
	gen       uint32
	mark      []uint32
	cand, res minHeap
	buf       []uint32
	q         []int8
}

func (g *Graph) getScratch() *scratch {
	s, _ := g.scratch.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	if n := g.Len(); len(s.mark) < n {
		s.mark = make([]uint32, n+n/4+64)
		s.gen = 0
	}
	s.nextGen()
	return s
}

func (s *scratch) nextGen() {
	s.gen++
	if s.gen == 0 { // wrapped: clear stale marks
		clear(s.mark)
		s.gen = 1
	}
}

func (g *Graph) drawLevel() int {
	return min(int(-math.Log(1-g.rng.Float64())*g.ml), 16)
}

func (g *Graph) stride0() int { return 2*g.cfg.M + 1 }

// grow appends node slots for the caller's IDs exts with the given levels,
// quantizing their vectors with up to workers goroutines.
func (g *Graph) grow(exts []uint32, levels []int, workers int) {
	first := g.Len()
	if g.dims == 0 && len(exts) > 0 {
		g.dims = len(g.vec(exts[0]))
	}
	n := first + len(exts)
	g.ext = append(g.ext, exts...)
	g.codes = slices.Grow(g.codes, len(exts)*g.dims)[:n*g.dims]
	g.scale = slices.Grow(g.scale, len(exts))[:n]
	g.base = append(g.base, make([]uint32, len(exts)*g.stride0())...)
	for i, l := range levels {
		if l > 0 {
			g.upper[uint32(first+i)] = make([]uint32, l*(g.cfg.M+1))
		}
	}
	var next atomic.Int64
	next.Store(int64(first))
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				g.quantizeNode(uint32(i))
			}
		})
	}
	wg.Wait()
}

// quantizeNode fills node n's codes from its vector. A vector of another
// length than the graph's gets zero codes: it is never near anything.
func (g *Graph) quantizeNode(n uint32) {
	c := g.code(n)
	if v := g.vec(g.ext[n]); len(v) == g.dims {
		g.scale[n] = quantize(c, v)
	} else {
		clear(c)
		g.scale[n] = 0
	}
}

// Add links the caller's vector ext into the graph.
func (g *Graph) Add(ext uint32) {
	id := uint32(g.Len())
	level := g.drawLevel()
	g.grow([]uint32{ext}, []int{level}, 1)
	if id == 0 {
		g.entry, g.maxLayer = 0, level
	} else {
		g.insert(id, level)
	}
	g.logInsert(id, level)
}

// Build returns a graph of the caller's ids, inserted by workers goroutines
// in parallel (see Extend). It stops early with ctx's error.
func Build(ctx context.Context, cfg Config, vec func(uint32) []float32, ids []uint32, workers int) (*Graph, error) {
	g := New(cfg, vec)
	if err := g.Extend(ctx, ids, workers); err != nil {
		return nil, err
	}
	return g, nil
}

// Extend links the caller's ids into the graph with workers goroutines in
// parallel (node locks, as hnswlib does). vec must be safe for concurrent
// use while it runs. It stops early with ctx's error, leaving the graph
// unusable.
func (g *Graph) Extend(ctx context.Context, ids []uint32, workers int) error {
	first := g.Len()
	n := first + len(ids)
	if len(ids) == 0 {
		return nil
	}
	levels := make([]int, len(ids))
	for i := range levels {
		levels[i] = g.drawLevel()
	}
	g.grow(ids, levels, workers)
	if first == 0 {
		g.entry, g.maxLayer = 0, levels[0]
		g.logInsert(0, levels[0])
		first = 1
	}
	g.locks = make([]sync.Mutex, n)
	defer func() { g.locks = nil }()
	var next atomic.Int64
	next.Store(int64(first))
	var wg sync.WaitGroup
	base := g.Len() - len(ids)
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				g.insert(uint32(i), levels[int(i)-base])
				g.logInsert(uint32(i), levels[int(i)-base])
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// SetVectors replaces the function the graph reads vectors through.
func (g *Graph) SetVectors(vec func(uint32) []float32) { g.vec = vec }

func (g *Graph) code(n uint32) []int8 {
	i := int(n) * g.dims
	return g.codes[i : i+g.dims : i+g.dims]
}

// level is the top layer node n is on.
func (g *Graph) level(n uint32) int {
	return len(g.upper[n]) / (g.cfg.M + 1)
}

// slot returns node n's link count and slots on layer l.
func (g *Graph) slot(n uint32, l int) []uint32 {
	if l == 0 {
		s := int(n) * g.stride0()
		return g.base[s : s+g.stride0() : s+g.stride0()]
	}
	w := g.cfg.M + 1
	s := (l - 1) * w
	return g.upper[n][s : s+w : s+w]
}

// neighbors returns node n's links on layer l; during a parallel Build, a
// copy taken under the node's lock.
func (g *Graph) neighbors(n uint32, l int, buf []uint32) []uint32 {
	s := g.slot(n, l)
	if g.locks == nil {
		return s[1 : 1+s[0]]
	}
	g.locks[n].Lock()
	buf = append(buf[:0], s[1:1+s[0]]...)
	g.locks[n].Unlock()
	return buf
}

// dist is the quantized distance between codes q (scale qs) and node n.
func (g *Graph) dist(q []int8, qs float32, n uint32) float32 {
	return 1 - qs*g.scale[n]*float32(dot8(q, g.code(n)))
}

func (g *Graph) nodeDist(a, b uint32) float32 { return g.dist(g.code(a), g.scale[a], b) }

// insert links node id, whose slots exist, into the graph.
func (g *Graph) insert(id uint32, level int) {
	q, qs := g.code(id), g.scale[id]
	if g.locks != nil {
		g.top.RLock()
	}
	ep, maxLayer := g.entry, g.maxLayer
	if g.locks != nil {
		g.top.RUnlock()
	}
	sc := g.getScratch()
	defer g.scratch.Put(sc)
	epDist := g.dist(q, qs, ep)
	for l := maxLayer; l > level; l-- {
		ep, epDist = g.greedy(q, qs, ep, epDist, l, sc)
	}
	for l := min(level, maxLayer); l >= 0; l-- {
		cands := g.searchLayer(q, qs, ep, epDist, g.cfg.EfConstruction, l, sc, nil)
		maxN := g.cfg.M
		if l == 0 {
			maxN = 2 * g.cfg.M
		}
		nbrs := g.selectNeighbors(nil, cands, g.cfg.M, true)
		g.setLinks(id, l, nbrs)
		for _, n := range nbrs {
			g.link(n, id, l, maxN)
		}
		ep, epDist = cands[0].id, cands[0].d
		sc.nextGen()
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

// setLinks writes node id's links on layer l (at most the slots it has).
func (g *Graph) setLinks(id uint32, l int, nbrs []uint32) {
	if g.locks != nil {
		g.locks[id].Lock()
		defer g.locks[id].Unlock()
	}
	s := g.slot(id, l)
	k := copy(s[1:], nbrs)
	s[0] = uint32(k)
}

// link adds a back-link from n to id on layer l, pruning n's list to maxN
// with the neighbour-selection heuristic when it overflows.
func (g *Graph) link(n, id uint32, l, maxN int) {
	if g.locks != nil {
		g.locks[n].Lock()
		defer g.locks[n].Unlock()
	}
	s := g.slot(n, l)
	cnt := int(s[0])
	if slices.Contains(s[1:1+cnt], id) || n == id {
		return
	}
	if cnt < maxN {
		s[1+cnt] = id
		s[0]++
		return
	}
	cands := make([]item, 0, cnt+1)
	cands = append(cands, item{id, g.nodeDist(n, id)})
	for _, x := range s[1 : 1+cnt] {
		cands = append(cands, item{x, g.nodeDist(n, x)})
	}
	sortItems(cands)
	var kept [64]uint32
	out := g.selectNeighbors(kept[:0], cands, maxN, false)
	s[0] = uint32(copy(s[1:], out))
}

type item struct {
	id uint32
	d  float32 // distance: 1 - cosine similarity
}

// greedy walks layer l to the closest node to q.
func (g *Graph) greedy(q []int8, qs float32, ep uint32, epDist float32, l int, sc *scratch) (uint32, float32) {
	for changed := true; changed; {
		changed = false
		sc.buf = g.neighbors(ep, l, sc.buf)
		for _, n := range sc.buf {
			if d := g.dist(q, qs, n); d < epDist {
				ep, epDist, changed = n, d, true
			}
		}
	}
	return ep, epDist
}

// searchLayer returns up to ef nodes closest to q on layer l, nearest first.
// keep, when not nil, limits by caller's ID which nodes may be returned; every node is
// still traversed, so a filter does not disconnect the graph.
func (g *Graph) searchLayer(q []int8, qs float32, ep uint32, epDist float32, ef, l int, sc *scratch, keep func(uint32) bool) []item {
	sc.mark[ep] = sc.gen
	// res keeps negated distances, so its top is the farthest node kept.
	cand, res := sc.cand[:0], sc.res[:0]
	cand.push(item{ep, epDist})
	if keep == nil || keep(g.ext[ep]) {
		res.push(item{ep, -epDist})
	}
	for len(cand) > 0 {
		c := cand.pop()
		if len(res) >= ef && c.d > -res[0].d {
			break
		}
		sc.buf = g.neighbors(c.id, l, sc.buf)
		for _, n := range sc.buf {
			if sc.mark[n] == sc.gen {
				continue
			}
			sc.mark[n] = sc.gen
			d := g.dist(q, qs, n)
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
	sc.cand, sc.res = cand, res
	return out
}

// selectNeighbors appends to out up to m of cands (nearest first) by the
// paper's heuristic: a candidate is kept only if it is closer to the new
// node than to every neighbour already kept, which preserves links between
// clusters. With fill, it fills up with the nearest pruned candidates so
// sparse regions keep their degree.
func (g *Graph) selectNeighbors(out []uint32, cands []item, m int, fill bool) []uint32 {
	start := len(out)
	for _, c := range cands {
		if len(out)-start >= m {
			break
		}
		good := true
		for _, k := range out[start:] {
			if g.nodeDist(c.id, k) < c.d {
				good = false
				break
			}
		}
		if good {
			out = append(out, c.id)
		}
	}
	for _, c := range cands {
		if !fill || len(out)-start >= m {
			break
		}
		if !slices.Contains(out[start:], c.id) {
			out = append(out, c.id)
		}
	}
	return out
}

// Search returns up to k nodes most similar to q, best first, searching with
// a candidate list of max(ef, k) (ef 0: Config.EfSearch) and re-ranking it
// by the exact float32 similarity, which the results carry with the
// caller's IDs. keep, when not nil, limits which IDs may be returned.
func (g *Graph) Search(q []float32, k, ef int, keep func(uint32) bool) []vecscan.Result {
	if g.Len() == 0 || k <= 0 || len(q) != g.dims {
		return nil
	}
	if ef <= 0 {
		ef = g.cfg.EfSearch
	}
	ef = max(ef, k)
	sc := g.getScratch()
	defer g.scratch.Put(sc)
	sc.q = slices.Grow(sc.q[:0], g.dims)[:g.dims]
	qs := quantize(sc.q, q)
	ep := g.entry
	epDist := g.dist(sc.q, qs, ep)
	for l := g.maxLayer; l > 0; l-- {
		ep, epDist = g.greedy(sc.q, qs, ep, epDist, l, sc)
	}
	items := g.searchLayer(sc.q, qs, ep, epDist, ef, 0, sc, keep)
	top := vecscan.NewTopK(k)
	for _, it := range items {
		id := g.ext[it.id]
		top.Push(id, vecscan.Dot(q, g.vec(id)))
	}
	return top.Sorted()
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
