package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/depai/depai/memory"
)

// replicator keeps the shared namespaces of this node's store and the
// fleet's DEPAI_MEM stream in step, both ways:
//   - out: a Watch on the local store from a cursor kept on disk publishes
//     each shared record, with its ID as Nats-Msg-Id, and moves the cursor
//     only once the stream acknowledged it. While the hub is away records
//     wait in the store itself, so nothing written offline is lost.
//   - in: a durable consumer per node applies what other nodes wrote with
//     Import, which keeps each record's ID and skips an ID already stored;
//     the consumer resumes from its last acknowledged message after any
//     outage.
type replicator struct {
	n      *Node
	store  ReplicaStore
	cursor string // file holding the last published local Seq; "" keeps it in RAM

	mu      sync.Mutex          // guards applied
	applied map[string]struct{} // IDs imported here, not to be published back
}

const (
	memSchema   = "depai.mem.record"
	memBatch    = 256
	memDupeWind = 10 * time.Minute
	// memAckWait is how soon a delivery that never arrived comes again: a
	// hub that just restarted may deliver to a leaf before it knows the
	// leaf's reply subject again, and those messages are lost in transit.
	// Acks are explicit, one per message, for the same reason: acking "all
	// up to N" would acknowledge such lost messages too.
	memAckWait = 5 * time.Second
)

func newReplicator(n *Node) (*replicator, error) {
	r := &replicator{n: n, store: n.cfg.Store, applied: map[string]struct{}{}}
	if n.cfg.DataDir != "" {
		dir := filepath.Join(n.cfg.DataDir, "mesh")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("mesh: replication: %w", err)
		}
		r.cursor = filepath.Join(dir, n.cfg.Name+".memcursor")
	}
	return r, nil
}

func (r *replicator) start() { r.n.goSafe(r.run) }

func (r *replicator) run() {
	n := r.n
	ctx := n.ctx
	var stream jetstream.Stream
	if retry(ctx, n.log, "memory stream", func() error {
		var err error
		stream, err = ensureStream(ctx, n.js, jetstream.StreamConfig{
			Name: memStream, Description: "depai shared memory", Subjects: []string{memSubjects},
			Storage: jetstream.FileStorage, Duplicates: memDupeWind, Replicas: n.cfg.Replicas,
		})
		return err
	}) != nil {
		return
	}
	n.goSafe(func() { r.in(ctx, stream) })
	r.out(ctx)
}

func (r *replicator) shared(ns string) bool {
	for _, s := range r.n.cfg.Shared {
		if memory.Within(ns, s) {
			return true
		}
	}
	return false
}

// out publishes local shared records in Seq order, batch by batch.
func (r *replicator) out(ctx context.Context) {
	n := r.n
	from := r.loadCursor()
	recs := make(chan memory.Record, 2*memBatch)
	n.goSafe(func() {
		defer close(recs)
		for rec, err := range r.store.Watch(ctx, memory.Query{AfterSeq: from}) {
			if err != nil {
				if ctx.Err() == nil {
					n.log.Error("memory replication stopped: watching the store failed", "err", err)
				}
				return
			}
			select {
			case recs <- rec:
			case <-ctx.Done():
				return
			}
		}
	})
	var batch []memory.Record
	var last uint64
	for {
		batch = batch[:0]
		rec, ok := <-recs
		if !ok {
			return
		}
		batch, last = r.take(batch, rec), rec.Seq
	fill:
		for len(batch) < memBatch {
			select {
			case rec, ok := <-recs:
				if !ok {
					break fill
				}
				batch, last = r.take(batch, rec), rec.Seq
			default:
				break fill
			}
		}
		if len(batch) > 0 && retry(ctx, n.log, "publishing shared memory", func() error { return r.publish(ctx, batch) }) != nil {
			return
		}
		r.saveCursor(last)
	}
}

// take adds rec to batch if it is a shared record that did not come from
// another node.
func (r *replicator) take(batch []memory.Record, rec memory.Record) []memory.Record {
	if rec.Kind == memory.KindAudit || !r.shared(rec.Namespace) {
		return batch
	}
	r.mu.Lock()
	_, mine := r.applied[rec.ID]
	delete(r.applied, rec.ID)
	r.mu.Unlock()
	if mine {
		return batch
	}
	return append(batch, rec)
}

// publish sends a batch and waits for every acknowledgement. A retried
// batch is stored once: the record ID is the message ID.
func (r *replicator) publish(ctx context.Context, batch []memory.Record) error {
	n := r.n
	futs := make([]jetstream.PubAckFuture, 0, len(batch))
	for _, rec := range batch {
		rec.ValidTo = time.Time{}
		p, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		e := Envelope{Schema: memSchema, Version: 1, Payload: p, Expires: time.Now().Add(time.Minute)}
		data, err := seal(n.cfg.Node, n.cfg.Name, &e)
		if err != nil {
			return err
		}
		f, err := n.js.PublishAsync(memSubject(rec.Namespace), data, jetstream.WithMsgID(rec.ID))
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	wait := time.NewTimer(10 * time.Second)
	defer wait.Stop()
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-wait.C:
			return errors.New("no acknowledgement within 10 s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *replicator) loadCursor() uint64 {
	if r.cursor == "" {
		return 0
	}
	b, err := os.ReadFile(r.cursor)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		r.n.log.Warn("memory replication cursor unreadable; republishing from the start (duplicates are dropped)", "file", r.cursor, "err", err)
		return 0
	}
	return v
}

// saveCursor records that everything up to seq is published. A lost write
// only means republishing, which the stream and Import deduplicate.
func (r *replicator) saveCursor(seq uint64) {
	if r.cursor == "" {
		return
	}
	tmp := r.cursor + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600); err == nil {
		_ = os.Rename(tmp, r.cursor)
	}
}

// in applies other nodes' records from the node's durable consumer. It
// reads with one long-lived pull subscription (Messages), not a Fetch per
// batch: a Fetch that gives up client-side while the hub is still
// delivering to it loses those deliveries until AckWait brings them back,
// which across a busy leaf link happened again and again.
func (r *replicator) in(ctx context.Context, stream jetstream.Stream) {
	n := r.n
	var filters []string
	for _, ns := range n.cfg.Shared {
		filters = append(filters, memSubject(ns), memSubject(ns)+".>")
	}
	var it jetstream.MessagesContext
	if retry(ctx, n.log, "memory consumer", func() error {
		cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: "mem_" + n.cfg.Name, FilterSubjects: filters, AckPolicy: jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: memAckWait, MaxAckPending: 4 * memBatch,
		})
		if err != nil {
			return err
		}
		it, err = cons.Messages(append(pullOpts(), jetstream.PullMaxMessages(2*memBatch))...)
		return err
	}) != nil {
		return
	}
	msgs := make(chan jetstream.Msg, memBatch)
	if !n.goSafe(func() { stopOnDone(ctx, it) }) {
		it.Stop()
		return
	}
	if !n.goSafe(func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				// Missed heartbeats and the like: the iterator carries on.
				n.log.Debug("memory consumer", "err", err)
				sleepCtx(ctx, 100*time.Millisecond)
				continue
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}) {
		return
	}
	batch := make([]jetstream.Msg, 0, memBatch)
	for {
		m, ok := <-msgs
		if !ok {
			return
		}
		batch = append(batch[:0], m)
	fill:
		for len(batch) < memBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		// A failed import leaves the batch unacknowledged: it comes again after AckWait.
		if err := r.apply(ctx, batch); err != nil && ctx.Err() == nil {
			n.log.Warn("applying shared memory failed; it is redelivered", "err", err)
		}
	}
}

// pullOpts make a pull iterator notice a lost hub quickly: a hub that
// restarts forgets the pull requests waiting on it, and the iterator only
// asks again once it misses heartbeats (by default after 30 s).
func pullOpts() []jetstream.PullMessagesOpt {
	return []jetstream.PullMessagesOpt{jetstream.PullExpiry(4 * time.Second), jetstream.PullHeartbeat(time.Second)}
}

// stopOnDone stops an iterator when ctx ends, so that its Next returns.
func stopOnDone(ctx context.Context, it interface{ Stop() }) {
	<-ctx.Done()
	it.Stop()
}

// apply verifies and imports one batch, then acknowledges it. Messages
// that fail verification are refused, reported and acknowledged (they
// would fail again); a failed import leaves the batch unacknowledged, to
// come again.
func (r *replicator) apply(ctx context.Context, msgs []jetstream.Msg) error {
	n := r.n
	var lines bytes.Buffer
	var ids []string
	var keep []jetstream.Msg
	checked := r.checkAll(msgs)
	batchIDs := make(map[string]bool, len(msgs))
	for i, m := range msgs {
		env, rec, err := checked[i].env, checked[i].rec, checked[i].err
		keep = append(keep, m)
		if err != nil {
			n.rejectErr(err, n.cfg.Name)
			continue
		}
		if !rec.ExpiresAt.IsZero() && !rec.ExpiresAt.After(time.Now()) {
			continue // expired in transit; Import would skip it too
		}
		if batchIDs[rec.ID] {
			continue // a redelivery in the same batch (Import does not dedupe within one call)
		}
		if _, err := r.store.Get(ctx, rec.ID); err == nil {
			continue // already here: written on this node, or applied before
		}
		batchIDs[rec.ID] = true
		lines.Write(env.Payload)
		lines.WriteByte('\n')
		ids = append(ids, rec.ID)
	}
	if len(ids) > 0 {
		r.mu.Lock()
		for _, id := range ids {
			r.applied[id] = struct{}{}
		}
		r.mu.Unlock()
		if _, err := r.store.Import(ctx, &lines, memory.ImportOptions{}); err != nil {
			r.mu.Lock()
			for _, id := range ids {
				delete(r.applied, id)
			}
			r.mu.Unlock()
			return err
		}
	}
	for _, m := range keep {
		if err := m.Ack(); err != nil {
			return err
		}
	}
	return nil
}

type checkedRecord struct {
	env Envelope
	rec memory.Record
	err error
}

// checkAll verifies and parses a batch, spread over the CPUs: signature
// checks are most of what catching up costs.
func (r *replicator) checkAll(msgs []jetstream.Msg) []checkedRecord {
	out := make([]checkedRecord, len(msgs))
	workers := min(runtime.GOMAXPROCS(0), (len(msgs)+31)/32)
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		if !r.n.goSafe(func() {
			defer wg.Done()
			for i := w; i < len(msgs); i += workers {
				out[i] = r.check(msgs[i])
			}
		}) {
			wg.Done()
			for i := w; i < len(msgs); i += workers {
				out[i] = r.check(msgs[i])
			}
		}
	}
	for i := 0; i < len(msgs); i += max(workers, 1) {
		out[i] = r.check(msgs[i])
	}
	wg.Wait()
	return out
}

func (r *replicator) check(m jetstream.Msg) checkedRecord {
	env, err := r.n.verify.openStored(m.Subject(), m.Data(), false)
	if err == nil && env.Schema != memSchema {
		err = &RejectError{Rejection{Time: time.Now(), Reason: ReasonMalformed, Detail: "schema " + clip(env.Schema) + ", want " + memSchema, Subject: m.Subject(), From: env.From, Size: len(m.Data())}}
	}
	var rec memory.Record
	if err == nil {
		if rec, err = memory.ParseLine(env.Payload); err != nil || memSubject(rec.Namespace) != m.Subject() || !r.shared(rec.Namespace) {
			err = &RejectError{Rejection{Time: time.Now(), Reason: ReasonMalformed, Detail: fmt.Sprintf("record: %v (namespace %q on %s)", err, rec.Namespace, m.Subject()), Subject: m.Subject(), From: env.From, FromName: env.FromName, Size: len(m.Data())}}
		}
	}
	return checkedRecord{env: env, rec: rec, err: err}
}
