package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// AuditNamespace is the one namespace audit records live in. No agent or
// plugin may be granted it, and no scoped view of memory writes kind audit.
const AuditNamespace = "audit"

// auditAuthor is the Author of every audit record: the core.
const auditAuthor = "depai"

// Phase says which half of an action an entry records. The decision is
// written before the action runs, so a crash between the two leaves the
// intent on record; the outcome follows it.
type Phase string

// Phases.
const (
	PhaseDecision Phase = "decision"
	PhaseOutcome  Phase = "outcome"
	PhaseEvent    Phase = "event" // a state change: e-stop engaged or released, approval parked
)

// Entry is the one schema of an audit record (memory.Record.Data of a
// KindAudit record in AuditNamespace).
type Entry struct {
	N         uint64          `json:"n"` // position in the chain, from 1
	Time      time.Time       `json:"time"`
	Agent     string          `json:"agent,omitempty"`
	Principal Principal       `json:"principal"`
	Kind      ActionKind      `json:"kind,omitempty"`
	Action    string          `json:"action"` // tool, host method or command name; "estop.engage" …
	Target    string          `json:"target,omitempty"`
	Phase     Phase           `json:"phase"`
	Decision  Verdict         `json:"decision,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Rule      string          `json:"rule,omitempty"`
	Args      json.RawMessage `json:"args,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *wire.Error     `json:"error,omitempty"`
	Ref       uint64          `json:"ref,omitempty"`      // an outcome's decision, by N
	TraceID   string          `json:"trace_id,omitempty"` // the OpenTelemetry trace the action was part of
	Count     int             `json:"count,omitempty"`    // denials coalesced into this entry
	// Lost are entries of this chain that could not be stored (a full
	// disk); Verify accepts their gaps only because a later entry declares them.
	Lost []uint64 `json:"lost,omitempty"`
	Prev string   `json:"prev"`
	Hash string   `json:"hash,omitempty"`
}

// maxAuditBytes bounds the arguments and result kept in one entry: the log
// is evidence, not a copy of every payload.
const maxAuditBytes = 4 << 10

// text is how the entry reads in /memory recent.
func (e *Entry) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "audit #%d %s %s", e.N, e.Phase, e.Action)
	if e.Target != "" {
		b.WriteString(" " + e.Target)
	}
	if e.Decision != "" {
		b.WriteString(": " + string(e.Decision))
	}
	if e.Reason != "" {
		b.WriteString(" (" + e.Reason + ")")
	}
	if e.Error != nil {
		b.WriteString(" error " + e.Error.Error())
	}
	fmt.Fprintf(&b, " by %s", e.Principal)
	if e.Count > 1 {
		fmt.Fprintf(&b, " ×%d", e.Count)
	}
	return b.String()
}

// seal sets e.Hash from prev and e's other fields.
func (e *Entry) seal(prev string) ([]byte, error) {
	e.Prev, e.Hash = prev, ""
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit: encode entry: %w", err)
	}
	sum := sha256.Sum256(append([]byte(prev), body...))
	e.Hash = hex.EncodeToString(sum[:])
	// json.Marshal(e) again, without encoding it twice: Hash is the last
	// field and plain hex, so it is body with `,"hash":"…"` before its
	// closing brace (TestSealIsMarshal). Every audited put seals two entries.
	out := make([]byte, 0, len(body)+len(`,"hash":""`)+len(e.Hash))
	out = append(out, body[:len(body)-1]...)
	out = append(out, `,"hash":"`...)
	out = append(out, e.Hash...)
	return append(out, `"}`...), nil
}

// check reports whether e.Hash is the hash of e's other fields.
func (e Entry) check() bool {
	want := e.Hash
	got := e
	if _, err := got.seal(e.Prev); err != nil {
		return false
	}
	return got.Hash == want
}

// clip keeps a payload in an entry only up to maxAuditBytes, as valid JSON.
func clip(raw json.RawMessage) json.RawMessage {
	if len(raw) <= maxAuditBytes {
		return raw
	}
	b, _ := json.Marshal(map[string]any{"truncated": true, "bytes": len(raw), "head": string(raw[:maxAuditBytes/2])})
	return b
}

// Log is the one writer of audit records. Entries are chained in the order
// Write is called and stored in that order, in batches: concurrent writers
// share one commit, as memory's group commit does for any put.
type Log struct {
	store memory.Store
	now   func() time.Time

	// mu orders the chain: the next N, the head hash and the batch being
	// filled. Lock order: Log.mu before nothing else.
	mu      sync.Mutex
	n       uint64
	prev    string
	lost    []uint64
	pending []*pendingEntry
	kick    chan struct{} // wakes the writer
	closed  bool
	done    chan struct{} // closed when the writer returned
}

type pendingEntry struct {
	entry Entry
	rec   memory.Record
	err   chan error
	// write, when set, commits in the same transaction as the entry (see
	// WriteWith); written is what it did.
	write   *memory.Write
	written memory.Written
}

// OpenLog continues the chain found in store and starts its writer. Close
// stops it.
func OpenLog(ctx context.Context, store memory.Store) (*Log, error) {
	l := &Log{store: store, now: time.Now, kick: make(chan struct{}, 1), done: make(chan struct{})}
	for r, err := range store.Query(ctx, memory.Query{Namespace: AuditNamespace, Kinds: []memory.Kind{memory.KindAudit}, Author: auditAuthor, Limit: 1}) {
		if err != nil {
			return nil, fmt.Errorf("audit: find the head of the chain: %w", err)
		}
		var e Entry
		if err := json.Unmarshal(r.Data, &e); err != nil || e.Hash == "" {
			return nil, fmt.Errorf("audit: the newest audit record %s is not a chain entry (%v); run depai audit verify", r.ID, err)
		}
		l.n, l.prev = e.N, e.Hash
	}
	go l.writer()
	return l, nil
}

// Write chains e and stores it; it returns once the record is durable. An
// error means the entry is not on record (and will be declared lost by the
// next one), so the action it describes must not proceed.
func (l *Log) Write(ctx context.Context, e Entry) (uint64, error) {
	p, err := l.add(ctx, e, nil)
	if err != nil {
		return 0, err
	}
	// The write is not abandoned with ctx: an entry in the chain must be
	// stored or declared lost, so the wait is for the commit.
	if err := <-p.err; err != nil {
		return 0, err
	}
	return p.entry.N, nil
}

// add chains e and hands it, with the write it may carry, to the writer.
func (l *Log) add(ctx context.Context, e Entry, w *memory.Write) (*pendingEntry, error) {
	e.Args, e.Result = clip(e.Args), clip(e.Result)
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() && e.TraceID == "" {
		e.TraceID = sc.TraceID().String()
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	p := &pendingEntry{err: make(chan error, 1), write: w}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("audit: log closed")
	}
	l.n++
	e.N = l.n
	e.Lost = l.lost
	data, err := e.seal(l.prev)
	if err != nil {
		l.n--
		l.mu.Unlock()
		return nil, err
	}
	l.prev, l.lost = e.Hash, nil
	p.entry = e
	p.rec = memory.Record{
		Namespace: AuditNamespace, Kind: memory.KindAudit, Author: auditAuthor, Time: e.Time,
		Text: e.text(), Data: data, Tags: auditTags(e),
	}
	l.pending = append(l.pending, p)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return p, nil
}

func auditTags(e Entry) []string {
	tags := []string{"phase:" + string(e.Phase), "action:" + e.Action, "principal:" + e.Principal.String()}
	if e.Decision != "" {
		tags = append(tags, "decision:"+string(e.Decision))
	}
	if e.Agent != "" {
		tags = append(tags, "agent:"+e.Agent)
	}
	return tags
}

// writer stores the pending entries, oldest first, one batch per commit.
func (l *Log) writer() {
	defer close(l.done)
	for range l.kick {
		l.mu.Lock()
		batch := l.pending
		l.pending = nil
		closed := l.closed
		l.mu.Unlock()
		if len(batch) > 0 {
			err := l.store1(batch)
			if err != nil {
				err = fmt.Errorf("audit: store %d record(s): %w", len(batch), err)
				l.mu.Lock()
				for _, p := range batch {
					l.lost = append(l.lost, p.entry.N)
				}
				l.mu.Unlock()
			}
			for _, p := range batch {
				p.err <- err
			}
		}
		if closed {
			return
		}
	}
}

// store1 stores one batch of entries, in one commit with the writes they
// carry.
func (l *Log) store1(batch []*pendingEntry) error {
	recs := make([]memory.Record, len(batch))
	var writes []memory.Write
	for i, p := range batch {
		recs[i] = p.rec
		if p.write != nil {
			writes = append(writes, *p.write)
		}
	}
	if writes == nil {
		_, err := l.store.Put(context.Background(), recs...)
		return err
	}
	b, ok := l.store.(memory.Batcher)
	if !ok {
		return fmt.Errorf("the store (%T) cannot commit an action with its audit record", l.store)
	}
	out, err := b.PutBatch(context.Background(), append([]memory.Write{{Recs: recs}}, writes...)...)
	if err != nil {
		return err
	}
	// The entries' records go first: the batch commits only with them.
	i := 1
	for _, p := range batch {
		if p.write != nil {
			p.written = out[i]
			i++
		}
	}
	return nil
}

// Close stores what is pending and stops the writer.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.kick <- struct{}{}
	<-l.done
	return nil
}

// Head is the newest entry's position and hash.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.prev
}

// Problem is one thing Verify found wrong.
type Problem struct {
	Seq  uint64 `json:"seq,omitempty"`
	ID   string `json:"id,omitempty"`
	N    uint64 `json:"n,omitempty"`
	What string `json:"what"`
}

// Report is what Verify found.
type Report struct {
	Entries  int       `json:"entries"`
	Head     uint64    `json:"head"`      // the last entry's N
	HeadHash string    `json:"head_hash"` // compare with an earlier report to detect a cut tail
	Lost     []uint64  `json:"lost,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
}

// OK reports whether the chain verified.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Verify walks every audit record in store and checks the chain: each
// entry's hash, its link to the one before, and that no entry is missing
// unless a later one declares it lost. Audit records that the core did not
// write — another author, another namespace — are problems too.
func Verify(ctx context.Context, store memory.Store) (Report, error) {
	var rep Report
	prev, last := "", uint64(0)
	declared := map[uint64]bool{}
	var gaps []uint64
	for r, err := range all(ctx, store) {
		if err != nil {
			return rep, fmt.Errorf("audit verify: %w", err)
		}
		bad := func(n uint64, format string, args ...any) {
			rep.Problems = append(rep.Problems, Problem{Seq: r.Seq, ID: r.ID, N: n, What: fmt.Sprintf(format, args...)})
		}
		if r.Namespace != AuditNamespace || r.Author != auditAuthor {
			bad(0, "a %s record in %s by %q: only the core writes audit records, in %s", r.Kind, r.Namespace, r.Author, AuditNamespace)
			continue
		}
		var e Entry
		if err := json.Unmarshal(r.Data, &e); err != nil {
			bad(0, "not an audit entry: %v", err)
			continue
		}
		rep.Entries++
		if !e.check() {
			bad(e.N, "entry #%d was changed after it was written (its hash does not match its content)", e.N)
		}
		if e.Prev != prev {
			bad(e.N, "entry #%d does not follow the entry before it (a record was removed, replaced or reordered)", e.N)
		}
		for n := last + 1; n < e.N; n++ {
			gaps = append(gaps, n)
		}
		if e.N <= last {
			bad(e.N, "entry #%d comes after #%d", e.N, last)
		}
		for _, n := range e.Lost {
			declared[n] = true
		}
		rep.Lost = append(rep.Lost, e.Lost...)
		prev, last = e.Hash, max(last, e.N)
	}
	for _, n := range gaps {
		if !declared[n] {
			rep.Problems = append(rep.Problems, Problem{N: n, What: fmt.Sprintf("entry #%d is missing", n)})
		}
	}
	rep.Head, rep.HeadHash = last, prev
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int { return compareUint(a.Seq, b.Seq) })
	return rep, nil
}

// all yields every audit record in the store, wherever it is, in commit
// order: kind audit outside AuditNamespace is a forgery to report.
func all(ctx context.Context, store memory.Store) iter.Seq2[memory.Record, error] {
	return func(yield func(memory.Record, error) bool) {
		for r, err := range store.Query(ctx, memory.Query{Ascending: true}) {
			if err != nil {
				yield(memory.Record{}, err)
				return
			}
			if r.Kind != memory.KindAudit && r.Namespace != AuditNamespace {
				continue
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String is the report as `depai audit verify` prints it.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d entries, head #%d %s", r.Entries, r.Head, r.HeadHash)
	if len(r.Lost) > 0 {
		parts := make([]string, len(r.Lost))
		for i, n := range r.Lost {
			parts[i] = "#" + strconv.FormatUint(n, 10)
		}
		fmt.Fprintf(&b, "\ndeclared lost (could not be stored): %s", strings.Join(parts, ", "))
	}
	if r.OK() {
		b.WriteString("\nchain verified")
		return b.String()
	}
	fmt.Fprintf(&b, "\n%d problem(s):", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "\n  ")
		if p.ID != "" {
			fmt.Fprintf(&b, "record %s (seq %d): ", p.ID, p.Seq)
		}
		b.WriteString(p.What)
	}
	return b.String()
}
