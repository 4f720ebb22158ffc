package memory

import (
	"context"
	"fmt"
	"iter"
	"slices"
)

// Grants are the namespaces a principal (an agent or a plugin) may read and
// write. A grant covers its namespace and everything below it: "fleet"
// covers "fleet/site-a"; "agent/robot-1" does not cover "agent/robot-10".
// Write does not imply Read.
type Grants struct {
	Principal string   // who acts; when empty, the Author of what it writes
	Read      []string // namespaces it may Get, Query and Watch
	Write     []string // namespaces it may Put into
	// OnDenied is told of every denied access, so that the caller's audit
	// log can record it; the scoped store itself writes no audit records.
	OnDenied func(ctx context.Context, d Denial)
}

// Denial is one access a ScopedStore refused.
type Denial struct {
	Principal string `json:"principal"`
	Op        string `json:"op"` // "read" or "write"
	Namespace string `json:"namespace"`
	Reason    string `json:"reason"`
}

// ScopedStore is a view of a Store limited to some Grants. A denied access
// returns an error wrapping ErrDenied and is reported to Grants.OnDenied.
// Nothing written through a scoped store may be of KindAudit: audit records
// are written by the agent's audit log alone, so none can be forged through
// a grant. Watch and the Facts methods work when the underlying store
// implements Watcher and Facts.
type ScopedStore struct {
	s Store
	g Grants
}

var (
	_ Store   = (*ScopedStore)(nil)
	_ Watcher = (*ScopedStore)(nil)
	_ Facts   = (*ScopedStore)(nil)
)

// Scoped returns a view of s limited to g. Invalid grant namespaces are an error.
func Scoped(s Store, g Grants) (*ScopedStore, error) {
	if g.Principal == "" {
		return nil, fmt.Errorf("memory: scoped: %w: grants have no principal", ErrInvalid)
	}
	for _, set := range []struct {
		name string
		ns   []string
	}{{"read", g.Read}, {"write", g.Write}} {
		for _, ns := range set.ns {
			if err := CheckNamespace(ns); err != nil {
				return nil, fmt.Errorf("memory: scoped %s: %s grant: %w", g.Principal, set.name, err)
			}
		}
	}
	g.Read, g.Write = slices.Clone(g.Read), slices.Clone(g.Write)
	return &ScopedStore{s: s, g: g}, nil
}

// Granted reports whether ns is within any of grants: a grant covers its
// namespace and every namespace below it.
func Granted(grants []string, ns string) bool {
	for _, g := range grants {
		if Within(ns, g) {
			return true
		}
	}
	return false
}

// deny reports a denied access and returns the error.
func (s *ScopedStore) deny(ctx context.Context, op, ns, why string) error {
	err := fmt.Errorf("memory: %s %q by %s: %w (%s; read grants %q, write grants %q)", op, ns, s.g.Principal, ErrDenied, why, s.g.Read, s.g.Write)
	if s.g.OnDenied != nil {
		s.g.OnDenied(ctx, Denial{Principal: s.g.Principal, Op: op, Namespace: ns, Reason: why})
	}
	return err
}

// Put stores recs if every one is in a writable namespace; otherwise it
// stores none. An empty Author becomes the principal.
func (s *ScopedStore) Put(ctx context.Context, recs ...Record) ([]Record, error) {
	recs, err := s.checkWrite(ctx, recs)
	if err != nil {
		return nil, err
	}
	return s.s.Put(ctx, recs...)
}

// checkWrite returns a copy of recs to store, or the error of a write the
// grants refuse.
func (s *ScopedStore) checkWrite(ctx context.Context, recs []Record) ([]Record, error) {
	recs = slices.Clone(recs)
	for i := range recs {
		if err := CheckNamespace(recs[i].Namespace); err != nil {
			return nil, fmt.Errorf("memory: put record %d: %w", i, err)
		}
		if recs[i].Kind == KindAudit {
			return nil, s.deny(ctx, "write", recs[i].Namespace, "records of kind audit are written by depai's audit log only")
		}
		if !Granted(s.g.Write, recs[i].Namespace) {
			return nil, s.deny(ctx, "write", recs[i].Namespace, "not granted")
		}
		if recs[i].Author == "" {
			recs[i].Author = s.g.Principal
		}
	}
	return recs, nil
}

// Deferrer is implemented by stores that take a write which may wait a
// moment to share a commit (see DB.PutDeferred and DB.Flush).
type Deferrer interface {
	PutDeferred(ctx context.Context, recs ...Record) ([]Record, error)
	Flush(ctx context.Context) error
}

var _ Deferrer = (*DB)(nil)

// PutDeferred is Put for a write the caller does not wait on at once (see
// DB.PutDeferred); on a store that is not a Deferrer it is Put.
func (s *ScopedStore) PutDeferred(ctx context.Context, recs ...Record) ([]Record, error) {
	recs, err := s.checkWrite(ctx, recs)
	if err != nil {
		return nil, err
	}
	if d, ok := s.s.(Deferrer); ok {
		return d.PutDeferred(ctx, recs...)
	}
	return s.s.Put(ctx, recs...)
}

// Flush commits what deferred writes wait with (see DB.Flush); on a store
// that is not a Deferrer there is nothing to flush.
func (s *ScopedStore) Flush(ctx context.Context) error {
	if d, ok := s.s.(Deferrer); ok {
		return d.Flush(ctx)
	}
	return nil
}

// Idempotent is implemented by stores that take a put with an idempotency
// key (see DB.PutOnce).
type Idempotent interface {
	PutOnce(ctx context.Context, key string, recs ...Record) (stored []Record, first bool, err error)
}

var _ Idempotent = (*DB)(nil)

// PutOnce is Put with an idempotency key (see DB.PutOnce): a retry with the
// key stores nothing and returns what the first put stored. Keys are the
// principal's own — two principals' equal keys do not meet. The underlying
// store must be Idempotent.
func (s *ScopedStore) PutOnce(ctx context.Context, key string, recs ...Record) ([]Record, bool, error) {
	once, ok := s.s.(Idempotent)
	if !ok {
		return nil, false, fmt.Errorf("memory: put: %w: the store (%T) takes no idempotency key", ErrInvalid, s.s)
	}
	recs, err := s.checkWrite(ctx, recs)
	if err != nil {
		return nil, false, err
	}
	if key == "" {
		return nil, false, fmt.Errorf("memory: put: %w: empty idempotency key", ErrInvalid)
	}
	// The principal's length first: a name may hold the separator, and
	// "a" with "b/k" must not meet "a/b" with "k".
	return once.PutOnce(ctx, fmt.Sprintf("scoped/%d/%s/%s", len(s.g.Principal), s.g.Principal, key), recs...)
}

// Get returns the record if its namespace is readable.
func (s *ScopedStore) Get(ctx context.Context, id string) (Record, error) {
	rec, err := s.s.Get(ctx, id)
	if err != nil {
		return Record{}, err
	}
	if !Granted(s.g.Read, rec.Namespace) {
		return Record{}, s.deny(ctx, "read", rec.Namespace, "not granted")
	}
	return rec, nil
}

// targets narrows a query namespace to what the grants allow: ns itself if
// a grant covers it, else the grants below ns (all grants when ns is ""),
// else nothing (denied).
func (s *ScopedStore) targets(ns string) []string {
	if ns != "" && Granted(s.g.Read, ns) {
		return []string{ns}
	}
	var out []string
	for _, g := range s.g.Read {
		if ns != "" && !Within(g, ns) {
			continue
		}
		if slices.ContainsFunc(s.g.Read, func(o string) bool { return o != g && Within(g, o) }) || slices.Contains(out, g) {
			continue // covered by a broader grant
		}
		out = append(out, g)
	}
	return out
}

// Query streams the matching records of the readable namespaces. A query
// for a namespace above the grants (or for all) covers the granted parts.
func (s *ScopedStore) Query(ctx context.Context, q Query) iter.Seq2[Record, error] {
	if err := checkQuery(q); err != nil {
		return func(yield func(Record, error) bool) { yield(Record{}, fmt.Errorf("memory: %w", err)) }
	}
	ts := s.targets(q.Namespace)
	switch len(ts) {
	case 0:
		return func(yield func(Record, error) bool) {
			yield(Record{}, s.deny(ctx, "read", q.Namespace, "not granted"))
		}
	case 1:
		q.Namespace = ts[0]
		return s.s.Query(ctx, q)
	}
	parts := make([]iter.Seq2[Record, error], len(ts))
	for i, ns := range ts {
		pq := q
		pq.Namespace = ns
		parts[i] = s.s.Query(ctx, pq)
	}
	return mergeBySeq(parts, q.Ascending, q.Limit)
}

// mergeBySeq merges streams that are each in Seq order.
func mergeBySeq(parts []iter.Seq2[Record, error], asc bool, limit int) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		type head struct {
			rec  Record
			next func() (Record, error, bool)
			stop func()
		}
		var heads []*head
		defer func() {
			for _, h := range heads {
				h.stop()
			}
		}()
		advance := func(h *head) (bool, error) {
			rec, err, ok := h.next()
			if !ok {
				return false, nil
			}
			h.rec = rec
			return true, err
		}
		for _, p := range parts {
			next, stop := iter.Pull2(p)
			h := &head{next: next, stop: stop}
			heads = append(heads, h)
			if ok, err := advance(h); err != nil {
				yield(Record{}, err)
				return
			} else if !ok {
				h.stop()
				heads = heads[:len(heads)-1]
			}
		}
		for n := 0; len(heads) > 0 && (limit == 0 || n < limit); n++ {
			best := 0
			for i, h := range heads {
				if asc && h.rec.Seq < heads[best].rec.Seq || !asc && h.rec.Seq > heads[best].rec.Seq {
					best = i
				}
			}
			h := heads[best]
			if !yield(h.rec, nil) {
				return
			}
			ok, err := advance(h)
			if err != nil {
				yield(Record{}, err)
				return
			}
			if !ok {
				h.stop()
				heads = slices.Delete(heads, best, best+1)
			}
		}
	}
}

// Watch streams new records of the readable namespaces.
func (s *ScopedStore) Watch(ctx context.Context, q Query) iter.Seq2[Record, error] {
	w, ok := s.s.(Watcher)
	if !ok {
		return func(yield func(Record, error) bool) {
			yield(Record{}, fmt.Errorf("memory: watch: the underlying %T is not a Watcher", s.s))
		}
	}
	if err := checkQuery(q); err != nil {
		return func(yield func(Record, error) bool) { yield(Record{}, fmt.Errorf("memory: watch: %w", err)) }
	}
	ts := s.targets(q.Namespace)
	switch len(ts) {
	case 0:
		return func(yield func(Record, error) bool) {
			yield(Record{}, s.deny(ctx, "watch", q.Namespace, "not granted"))
		}
	case 1:
		q.Namespace = ts[0]
		return w.Watch(ctx, q)
	}
	// Several grants: watch the common parent and drop what is not granted.
	return func(yield func(Record, error) bool) {
		for rec, err := range w.Watch(ctx, q) {
			if err != nil {
				yield(Record{}, err)
				return
			}
			if Granted(ts, rec.Namespace) && !yield(rec, nil) {
				return
			}
		}
	}
}

// LastSeq is the underlying store's (0 if it is not a Watcher).
func (s *ScopedStore) LastSeq() uint64 {
	if w, ok := s.s.(Watcher); ok {
		return w.LastSeq()
	}
	return 0
}

func (s *ScopedStore) facts() (Facts, error) {
	f, ok := s.s.(Facts)
	if !ok {
		return nil, fmt.Errorf("memory: the underlying %T does not keep facts", s.s)
	}
	return f, nil
}

// PutFact is Facts.PutFact within the write grants.
func (s *ScopedStore) PutFact(ctx context.Context, rec Record, expectedSeq uint64) (Record, error) {
	f, err := s.facts()
	if err != nil {
		return Record{}, err
	}
	if err := CheckNamespace(rec.Namespace); err != nil {
		return Record{}, fmt.Errorf("memory: put fact: %w", err)
	}
	if rec.Kind == KindAudit {
		return Record{}, s.deny(ctx, "write", rec.Namespace, "records of kind audit are written by depai's audit log only")
	}
	if !Granted(s.g.Write, rec.Namespace) {
		return Record{}, s.deny(ctx, "write", rec.Namespace, "not granted")
	}
	if rec.Author == "" {
		rec.Author = s.g.Principal
	}
	return f.PutFact(ctx, rec, expectedSeq)
}

// Fact is Facts.Fact within the read grants.
func (s *ScopedStore) Fact(ctx context.Context, namespace, key string) (Record, error) {
	f, err := s.facts()
	if err != nil {
		return Record{}, err
	}
	if err := CheckNamespace(namespace); err != nil {
		return Record{}, fmt.Errorf("memory: fact: %w", err)
	}
	if !Granted(s.g.Read, namespace) {
		return Record{}, s.deny(ctx, "read", namespace, "not granted")
	}
	return f.Fact(ctx, namespace, key)
}

// History is Facts.History within the read grants.
func (s *ScopedStore) History(ctx context.Context, namespace, key string) ([]Record, error) {
	f, err := s.facts()
	if err != nil {
		return nil, err
	}
	if err := CheckNamespace(namespace); err != nil {
		return nil, fmt.Errorf("memory: history: %w", err)
	}
	if !Granted(s.g.Read, namespace) {
		return nil, s.deny(ctx, "read", namespace, "not granted")
	}
	return f.History(ctx, namespace, key)
}

// Close does nothing: the underlying store is shared and closed by its owner.
func (s *ScopedStore) Close() error { return nil }
