package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// WriteWith chains e and commits it in one transaction with w, which the
// entry records: the action is never on disk without its audit record, nor
// the record of an action without the action — and the pair costs one
// commit, not two in a row. It returns once both are durable; w's own
// failure (a reused idempotency key) is in the Written, with e stored. The
// log's store must be a memory.Batcher.
func (l *Log) WriteWith(ctx context.Context, e Entry, w memory.Write) (uint64, memory.Written, error) {
	// Refused here, not in the writer: a batch that cannot be stored fails
	// every entry in it.
	if _, ok := l.store.(memory.Batcher); !ok {
		return 0, memory.Written{}, fmt.Errorf("audit: the store (%T) cannot commit an action with its audit record", l.store)
	}
	p, err := l.add(ctx, e, &w)
	if err != nil {
		return 0, memory.Written{}, err
	}
	if err := <-p.err; err != nil {
		return 0, memory.Written{}, err
	}
	return p.entry.N, p.written, nil
}

// writeLater chains e and stores it with the next batch, without waiting:
// for an outcome whose action is already on record with its decision. If it
// cannot be stored, the next entry declares it lost.
func (l *Log) writeLater(ctx context.Context, e Entry) error {
	_, err := l.add(ctx, e, nil)
	return err
}

// writeResult is the Result of the outcome of an AuthorizeWrite.
type writeResult struct {
	IDs      []string `json:"ids"`
	Replayed bool     `json:"replayed,omitempty"` // the idempotency key had committed before: nothing was stored
}

// AuthorizeWrite decides a — a write into memory, such as an operator's put
// — and, when it is allowed, commits its audit decision and w in one
// transaction (Log.WriteWith); the outcome follows in the next commit of the
// log, not waited for. An invalid w is refused first (memory.ErrInvalid); a
// refusal is returned as Authorize returns it; an action that needs an
// approval waits for it and then writes. The error is w's own failure too
// (memory.ErrKeyReused, memory.ErrTooLarge), which the outcome records.
func (e *Engine) AuthorizeWrite(ctx context.Context, a Action, w memory.Write) (memory.Written, error) {
	// An invalid write is refused before it is decided: it must not fail
	// the commit that carries other actions' audit records.
	if err := w.Check(); err != nil {
		return memory.Written{}, fmt.Errorf("policy: %s: %w", a.Name, err)
	}
	d := e.decide(ctx, a)
	if d.Verdict != Allow || !audited(a, d) {
		done, err := e.authorize(ctx, a, d)
		if err != nil {
			return memory.Written{}, err
		}
		written, err := e.put(ctx, w)
		done(resultOf(written), err)
		return written, err
	}
	entry := Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseDecision, Decision: d.Verdict, Reason: d.Reason, Rule: d.Rule, Args: a.Args}
	n, written, err := e.log.WriteWith(ctx, entry, w)
	if err != nil {
		// Fail closed: the commit carried both, so neither is stored.
		return memory.Written{}, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s refused: the audit log cannot record it: %v", a.Name, err), Retryable: true}
	}
	out := Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseOutcome, Ref: n, Result: resultOf(written)}
	if written.Err != nil {
		out.Result, out.Error = nil, &wire.Error{Code: wire.CodeInvalidArgument, Message: written.Err.Error()}
	}
	if err := e.log.writeLater(context.WithoutCancel(ctx), out); err != nil {
		e.logger.Error("audit: outcome not recorded", "action", a.Name, "ref", n, "err", err)
	}
	return written, written.Err
}

// put is w on its own, for a write whose decision was recorded before it.
func (e *Engine) put(ctx context.Context, w memory.Write) (memory.Written, error) {
	b, ok := e.log.store.(memory.Batcher)
	if !ok {
		return memory.Written{}, errors.New("policy: the store cannot take a write with an idempotency key")
	}
	out, err := b.PutBatch(ctx, w)
	if err != nil {
		return memory.Written{}, err
	}
	return out[0], out[0].Err
}

func resultOf(w memory.Written) json.RawMessage {
	if len(w.Recs) == 0 {
		return nil
	}
	r := writeResult{Replayed: !w.First}
	for _, rec := range w.Recs {
		r.IDs = append(r.IDs, rec.ID)
	}
	b, _ := json.Marshal(r)
	return b
}
