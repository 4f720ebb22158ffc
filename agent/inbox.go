package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
)

// inbox is an agent's bounded queue of inputs. At most concurrency turns
// run at once; at most size inputs wait for one. An operator's or another
// agent's message waits in its caller (which streams the turn); sensor
// events, wakes and schedule ticks are queued here and coalesced by source,
// so a chatty plugin becomes one turn about its latest event, not a turn
// per event.
type inbox struct {
	a     *Agent
	size  int
	slots chan struct{} // a token per running turn

	mu      sync.Mutex
	waiting int       // callers waiting for a slot
	queue   []*queued // background inputs, oldest first
	kick    chan struct{}
}

type queued struct {
	in     Input
	key    string // coalescing key: the input's source and sender
	merged int    // inputs folded into this one
}

func newInbox(a *Agent, size, concurrency int) *inbox {
	return &inbox{a: a, size: max(size, 1), slots: make(chan struct{}, max(concurrency, 1)), kick: make(chan struct{}, 1)}
}

func (b *inbox) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting + len(b.queue)
}

// admit asks the policy whether an input that another agent or a plugin
// caused may start a turn: chains past the depth limit end here, on record.
func (b *inbox) admit(ctx context.Context, in Input) error {
	if in.Source == SourceOperator {
		return nil
	}
	_, err := b.a.fleet.policy.Authorize(ctx, policy.Action{
		Agent: b.a.cfg.Name, Principal: principalOf(in), Kind: policy.ActionMessage, Name: "input", Target: in.Cause, Depth: in.Depth,
	})
	return err
}

// run runs a caller's input as a turn once a slot is free, streaming its
// events to emit.
func (b *inbox) run(ctx context.Context, in Input, emit func(Event) bool) {
	if err := b.admit(ctx, in); err != nil {
		emit(errorEvent(CodeDenied, err.Error()))
		return
	}
	b.mu.Lock()
	if b.waiting+len(b.queue) >= b.size {
		b.mu.Unlock()
		emit(errorEvent(CodeBusy, fmt.Sprintf("agent %s is busy: %d inputs are waiting (limits.inbox %d); try again shortly", b.a.cfg.Name, b.size, b.size)))
		return
	}
	b.waiting++
	b.mu.Unlock()
	acquired := false
	select {
	case b.slots <- struct{}{}:
		acquired = true
	case <-ctx.Done():
	case <-b.a.fleet.bgCtx.Done():
	}
	b.mu.Lock()
	b.waiting--
	b.mu.Unlock()
	if !acquired {
		emit(errorEvent(CodeCancelled, "the input was cancelled while it waited for the agent"))
		return
	}
	defer func() { <-b.slots }()
	b.a.turn(ctx, in, emit)
}

// post queues a background input, folding it into a queued one from the
// same source. It reports whether the input was kept.
func (b *inbox) post(in Input) bool {
	ctx := b.a.fleet.bgCtx
	if err := b.admit(ctx, in); err != nil {
		b.a.log.Warn("input refused", "source", in.Source, "from", in.From, "depth", in.Depth, "err", err)
		return false
	}
	key := string(in.Source) + "/" + in.From
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queue {
		if q.key == key {
			q.merged++
			q.in.Text, q.in.Cause, q.in.Depth = in.Text, in.Cause, max(q.in.Depth, in.Depth)
			return true
		}
	}
	if b.waiting+len(b.queue) >= b.size {
		b.a.log.Warn("inbox full: input dropped", "source", in.Source, "from", in.From, "limit", b.size)
		return false
	}
	b.queue = append(b.queue, &queued{in: in, key: key})
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return true
}

// start runs the dispatcher that turns queued inputs into turns.
func (b *inbox) start() {
	ctx := b.a.fleet.bgCtx
	b.a.fleet.goBG(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-b.kick:
			}
			for {
				b.mu.Lock()
				if len(b.queue) == 0 {
					b.mu.Unlock()
					break
				}
				q := b.queue[0]
				b.queue = b.queue[1:]
				b.mu.Unlock()
				select {
				case b.slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				in := q.in
				if q.merged > 0 {
					in.Text = fmt.Sprintf("[%d earlier inputs from %s were folded into this one; the latest follows] %s", q.merged, in.From, in.Text)
				}
				started := b.a.fleet.goBG(func() {
					defer func() { <-b.slots }()
					b.a.turn(ctx, in, func(ev Event) bool {
						if b.a.fleet.opts.Events != nil {
							b.a.fleet.opts.Events(b.a.cfg.Name, ev)
						}
						if ev.Type == EventError {
							b.a.log.Warn("background turn failed", "source", in.Source, "from", in.From, "code", ev.Code, "err", ev.Error)
						}
						return true
					})
				})
				if !started {
					<-b.slots
					return
				}
			}
		}
	})
}

// principalOf is who an input speaks for, as the policy sees it.
func principalOf(in Input) policy.Principal {
	switch in.Source {
	case SourceOperator:
		return policy.Principal{Kind: policy.PrincipalOperator, ID: in.From, Role: in.Role}
	case SourceSchedule:
		return policy.Principal{Kind: policy.PrincipalSchedule, ID: in.From}
	case SourceAgent:
		return policy.Principal{Kind: policy.PrincipalAgent, ID: in.From}
	case SourceSensor:
		return policy.Principal{Kind: policy.PrincipalPlugin, ID: in.From}
	}
	return policy.Principal{Kind: policy.PrincipalSystem, ID: in.From}
}

// depthTag marks a record written during a turn with that turn's depth, so
// a wake it causes starts one hop further.
const depthTag = "depth:"

func depthOf(r memory.Record) int {
	for _, t := range r.Tags {
		if v, ok := strings.CutPrefix(t, depthTag); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return n
			}
		}
	}
	return 0
}

// startWakes follows shared memory for the records the agent's config
// subscribes to; each one is an input one hop deeper than what wrote it.
func (a *Agent) startWakes() {
	ctx := a.fleet.bgCtx
	for _, w := range a.cfg.Wake {
		q := memory.Query{Namespace: w.Namespace, Tags: w.Tags, AfterSeq: a.mem.LastSeq()}
		for _, k := range w.Kinds {
			q.Kinds = append(q.Kinds, memory.Kind(k))
		}
		a.fleet.goBG(func() {
			for r, err := range a.mem.Watch(ctx, q) {
				if err != nil {
					if ctx.Err() == nil {
						a.log.Error("wake watch ended", "namespace", w.Namespace, "err", err)
					}
					return
				}
				if r.Author == a.cfg.Name {
					continue
				}
				if w.Inspect != nil {
					a.reflex(ctx, w, r)
					continue
				}
				a.inbox.post(Input{
					Source: SourceAgent, From: r.Author, Cause: r.ID, Depth: depthOf(r) + 1,
					Text: fmt.Sprintf("new %s in %s from %s: %s", r.Kind, r.Namespace, r.Author, r.Text),
				})
			}
		})
	}
}

// startSchedules feeds each schedule's input on its interval: a command
// runs at once, with the rights of an operator; text becomes a queued turn.
func (a *Agent) startSchedules() {
	ctx := a.fleet.bgCtx
	for _, s := range a.cfg.Schedule {
		a.fleet.goBG(func() {
			t := time.NewTicker(s.Every.Std())
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				in := Input{Source: SourceSchedule, From: "schedule", Text: s.Input}
				if !strings.HasPrefix(strings.TrimSpace(s.Input), "/") {
					a.inbox.post(in)
					continue
				}
				for ev := range a.Handle(ctx, in) {
					if ev.Type == EventError {
						a.log.Warn("scheduled command failed", "input", s.Input, "code", ev.Code, "err", ev.Error)
					}
				}
			}
		})
	}
}
