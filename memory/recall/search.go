package recall

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/recall/internal/bm25"
	"github.com/depai/depai/memory/recall/internal/rrf"
	"github.com/depai/depai/memory/recall/internal/vecscan"
)

// Search returns up to q.K records matching q.Filter, ranked by BM25 and
// vector similarity fused with RRF.
//
// While the index is loading or rebuilding (Stats.Ready false), Search
// ranks by BM25 alone the newest scanLimit records that match q.Filter,
// read from the Source: recent memories are found at once after a start,
// older ones once the index is ready.
func (x *Index) Search(ctx context.Context, q Query) ([]Hit, error) {
	if strings.TrimSpace(q.Text) == "" {
		return nil, errors.New("recall: search: Query.Text is empty; to list records by filter alone use memory.Store.Query")
	}
	if q.Filter.Limit != 0 || q.Filter.Ascending {
		return nil, fmt.Errorf("recall: search: Query.Filter.Limit %d / Ascending %v: not used by recall; set Query.K", q.Filter.Limit, q.Filter.Ascending)
	}
	if q.K < 0 || q.K > 1000 {
		return nil, fmt.Errorf("recall: search: Query.K %d: want 0 (default 10) to 1000", q.K)
	}
	if !(q.Floor >= 0 && q.Floor <= 1) {
		return nil, fmt.Errorf("recall: search: Query.Floor %v: want 0 (keep every match) to 1", q.Floor)
	}
	if q.K == 0 {
		q.K = 10
	}
	depth := candidates(q.K)

	var qv []float32
	if x.emb != nil {
		vs, err := x.emb.Embed(ctx, []string{q.Text})
		if err == nil && len(vs) == 1 {
			qv = slices.Clone(vs[0])
			if !vecscan.Normalize(qv) {
				qv = nil
			}
		} else if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("recall: search: %w", ctx.Err())
			}
			x.setErr(fmt.Errorf("recall: embed query (ranking by BM25 alone): %w", err))
		}
	}

	x.mu.RLock()
	if x.closed { // Close has saved the graphs, closed their logs and the badger
		x.mu.RUnlock()
		return nil, errors.New("recall: search: index closed")
	}
	if !x.loaded || x.rebuild && !x.ready {
		x.mu.RUnlock()
		return x.scanSearch(ctx, q)
	}
	keep, nsOK := x.filter(q.Filter, q.Within, time.Now())
	lex := floored(x.text.Search(bm25.ParseQuery(q.Text), depth, keep), q.Floor)
	var sem []vecscan.Result
	if qv != nil {
		sem = x.searchVectors(qv, nsOK, depth, keep)
	}
	var fused []rrf.Fused
	if len(sem) == 0 {
		fused = rrf.Single(ids(lex), 2) // BM25 alone: its order, without the merge
	} else {
		fused = rrf.Fuse(ids(lex), ids(sem))
	}
	// The IDs are copied as they are held (16 bytes), and spelled out only
	// for the records fetched.
	type cand struct {
		f   rrf.Fused
		uid ulid.ULID
		odd string
		key alike
	}
	cands := make([]cand, len(fused))
	for i, f := range fused {
		d := &x.docs[f.ID]
		cands[i] = cand{f: f, uid: d.uid, odd: x.odd[f.ID], key: alike{d.text, d.ns, d.kind}}
	}
	x.mu.RUnlock()

	hits := make([]Hit, 0, q.K)
	var keys [16]alike
	taken := keys[:0] // with Distinct: the keys of the hits so far
	for _, c := range cands {
		if len(hits) == q.K {
			break
		}
		// A copy of a hit is skipped unread. Keys are 32-bit hashes: about
		// one pair of different texts in 4×10^9 is taken for copies.
		if q.Distinct && c.key.text != 0 && slices.Contains(taken, c.key) {
			continue
		}
		id := c.odd
		if id == "" {
			id = c.uid.String()
		}
		rec, err := x.cfg.Source.Get(ctx, id)
		if errors.Is(err, memory.ErrNotFound) {
			continue // expired or gone since it was indexed
		}
		if err != nil {
			return nil, fmt.Errorf("recall: search: get %s: %w", id, err)
		}
		if !hasTags(rec.Tags, q.Filter.Tags) {
			continue // the index matched a tag's hash only
		}
		if q.Distinct {
			if readsLikeOne(hits, &rec) {
				continue // a copy of a document saved without its key
			}
			taken = append(taken, alike{textKey(rec.Text), c.key.ns, c.key.kind})
		}
		hits = append(hits, Hit{Record: rec, Score: c.f.Score, BM25Rank: c.f.Ranks[0], VectorRank: c.f.Ranks[1]})
	}
	return hits, nil
}

// candidates is how many candidates each ranking gives for k hits: some are
// filtered out, expired, or copies (Query.Distinct).
func candidates(k int) int { return max(4*k, 40) }

// alike is what records that read alike share in the index: their text's
// key (textKey) and their interned namespace and kind.
type alike struct{ text, ns, kind uint32 }

// readsLikeOne reports whether rec reads like one of hits: the same text,
// kind and namespace.
func readsLikeOne(hits []Hit, rec *memory.Record) bool {
	return slices.ContainsFunc(hits, func(h Hit) bool {
		return h.Record.Text == rec.Text && h.Record.Kind == rec.Kind && h.Record.Namespace == rec.Namespace
	})
}

// floored is the BM25 results rs, best first, without those scoring below
// floor times the best.
func floored(rs []vecscan.Result, floor float64) []vecscan.Result {
	if floor == 0 || len(rs) == 0 {
		return rs
	}
	cut := float32(floor) * rs[0].Score
	n, _ := slices.BinarySearchFunc(rs, cut, func(r vecscan.Result, cut float32) int {
		if r.Score >= cut {
			return -1
		}
		return 1
	})
	return rs[:n]
}

func ids(rs []vecscan.Result) []uint32 {
	out := make([]uint32, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// searchVectors searches every partition whose namespace nsOK admits (nil:
// all). Called with x.mu held.
func (x *Index) searchVectors(q []float32, nsOK []bool, k int, keep func(uint32) bool) []vecscan.Result {
	top := vecscan.NewTopK(k)
	for ns, p := range x.parts {
		if nsOK != nil && !nsOK[x.nss.ids[ns]] {
			continue
		}
		for _, r := range p.search(q, k, keep, x.hcfg.EfSearch) {
			top.Push(r.ID, r.Score)
		}
	}
	return top.Sorted()
}

// filter compiles f and within into a predicate on document numbers, and
// the namespaces they admit by interned ID (nil: all). Called with x.mu held.
func (x *Index) filter(f memory.Query, within []string, now time.Time) (keep func(uint32) bool, nsOK []bool) {
	nowNs := now.UnixNano()
	if f.Namespace != "" || len(within) > 0 {
		nsOK = make([]bool, len(x.nss.strs))
		for id, s := range x.nss.strs {
			ok := s != "" && (f.Namespace == "" || memory.Within(s, f.Namespace))
			if ok && len(within) > 0 {
				ok = slices.ContainsFunc(within, func(w string) bool { return w != "" && memory.Within(s, w) })
			}
			nsOK[id] = ok
		}
	}
	var kinds []uint32
	for _, k := range f.Kinds {
		if id, ok := x.strs.lookup(string(k)); ok {
			kinds = append(kinds, id)
		}
	}
	none := func(uint32) bool { return false }
	if len(f.Kinds) > 0 && len(kinds) == 0 {
		return none, nsOK
	}
	exact := func(s string) (uint32, bool) {
		if s == "" {
			return 0, true
		}
		return x.strs.lookup(s)
	}
	author, ok1 := exact(f.Author)
	key, ok2 := exact(f.Key)
	tags := make([]uint32, len(f.Tags))
	for i, t := range f.Tags {
		tags[i] = fnv32(t)
	}
	if !ok1 || !ok2 {
		return none, nsOK
	}
	var since, until int64 = math.MinInt64, math.MaxInt64
	if !f.Since.IsZero() {
		since = f.Since.UnixNano()
	}
	if !f.Until.IsZero() {
		until = f.Until.UnixNano()
	}
	docs, hashes := x.docs, x.tagHashes
	return func(n uint32) bool {
		d := &docs[n]
		switch {
		case d.old,
			d.expires != 0 && d.expires <= nowNs,
			nsOK != nil && !nsOK[d.ns],
			f.Author != "" && d.author != author,
			f.Key != "" && d.key != key,
			d.time < since || d.time >= until,
			d.seq <= f.AfterSeq:
			return false
		}
		if len(kinds) > 0 && !slices.Contains(kinds, d.kind) {
			return false
		}
		have := hashes[d.tag0 : d.tag0+uint32(d.ntags)]
		for _, t := range tags {
			if !slices.Contains(have, t) {
				return false
			}
		}
		return true
	}, nsOK
}

// hasTags reports whether have holds every tag of want.
func hasTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// scanLimit is how many of the newest matching records Search ranks while
// the index is not ready.
const scanLimit = 4096

// scanSearch ranks the newest matching records of the Source by BM25, in
// a throwaway index.
func (x *Index) scanSearch(ctx context.Context, q Query) ([]Hit, error) {
	f := q.Filter
	f.Limit = scanLimit
	var recs []memory.Record
	text := bm25.New()
	for rec, err := range x.cfg.Source.Query(ctx, f) {
		if err != nil {
			return nil, fmt.Errorf("recall: search (index not ready, scanning the store): %w", err)
		}
		if !rec.ValidTo.IsZero() {
			continue // a superseded fact
		}
		if len(q.Within) > 0 && !slices.ContainsFunc(q.Within, func(w string) bool { return w != "" && memory.Within(rec.Namespace, w) }) {
			continue
		}
		if err := text.Add(uint32(len(recs)), rec.Text); err != nil {
			return nil, fmt.Errorf("recall: search: %w", err)
		}
		recs = append(recs, rec)
	}
	res := floored(text.Search(bm25.ParseQuery(q.Text), candidates(q.K), nil), q.Floor)
	hits := make([]Hit, 0, q.K)
	for i, r := range res {
		if len(hits) == q.K {
			break
		}
		if q.Distinct && readsLikeOne(hits, &recs[r.ID]) {
			continue
		}
		hits = append(hits, Hit{Record: recs[r.ID], Score: float64(r.Score), BM25Rank: i + 1})
	}
	return hits, nil
}
