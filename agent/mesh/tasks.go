package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
)

// TaskEvent is one step of a task's life, and the last token of its
// message's subject.
type TaskEvent string

const (
	EventOffer    TaskEvent = "offer"
	EventBid      TaskEvent = "bid"
	EventAward    TaskEvent = "award"
	EventAccept   TaskEvent = "accept"
	EventProgress TaskEvent = "progress"
	EventResult   TaskEvent = "result"
	EventFail     TaskEvent = "fail"
	// EventTimeout and EventResume are never sent: the node raises them
	// when a deadline passes, and after a restart for each task this node's
	// agent had accepted and not finished.
	EventTimeout TaskEvent = "timeout"
	EventResume  TaskEvent = "resume"
)

// TaskState is where a task is.
type TaskState string

const (
	TaskOffered  TaskState = "offered"
	TaskAccepted TaskState = "accepted"
	TaskRunning  TaskState = "running" // progress reported
	TaskDone     TaskState = "done"
	TaskFailed   TaskState = "failed"
	TaskTimedOut TaskState = "timed_out" // the deadline passed before a result
)

// Terminal reports whether nothing more can happen to a task in state s.
func (s TaskState) Terminal() bool { return s == TaskDone || s == TaskFailed || s == TaskTimedOut }

// Task is the state of one delegated task, as every node derives it from
// DEPAI_TASKS: messages apply in stream order, and a message stored after
// the deadline changes nothing, so all nodes agree.
type Task struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	From     string          `json:"from"` // the delegator
	FromDID  string          `json:"from_did"`
	To       string          `json:"to,omitempty"` // the assignee; "" while an open offer is unassigned
	ToDID    string          `json:"to_did,omitempty"`
	Input    json.RawMessage `json:"input,omitempty"`
	Deadline time.Time       `json:"deadline"`
	State    TaskState       `json:"state"`
	Bids     []Bid           `json:"bids,omitempty"`
	Percent  float64         `json:"percent,omitempty"`
	Note     string          `json:"note,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
	Error    string          `json:"error,omitempty"`
	Created  time.Time       `json:"created"`
	Updated  time.Time       `json:"updated"`
	Seq      uint64          `json:"seq"` // stream sequence of the last message applied
}

// Bid is an agent's offer to take an open task.
type Bid struct {
	Agent string        `json:"agent"`
	DID   string        `json:"did"`
	Price float64       `json:"price,omitempty"`
	ETA   time.Duration `json:"eta,omitempty"`
	Note  string        `json:"note,omitempty"`
}

// Offer describes a task to delegate.
type Offer struct {
	// To names the agent asked to do it; "" makes an open offer that any
	// agent may accept (first in stream order wins) or bid on.
	To    string
	Kind  string
	Input json.RawMessage
	// Timeout is how long the task may take in all; default 5 minutes.
	Timeout time.Duration
}

// TaskUpdate is what a TaskHandler is told.
type TaskUpdate struct {
	Event TaskEvent
	Task  Task
}

// TaskHandler is told of the tasks that concern an agent: offers to it
// (and open ones), awards, and after a restart the tasks it must resume;
// for the tasks it delegated, bids, acceptance, progress, the result,
// failure and timeout. Calls for one agent come one at a time, in order.
type TaskHandler interface {
	HandleTask(ctx context.Context, u TaskUpdate)
}

// TaskHandlerFunc adapts a function to TaskHandler.
type TaskHandlerFunc func(ctx context.Context, u TaskUpdate)

// HandleTask calls f.
func (f TaskHandlerFunc) HandleTask(ctx context.Context, u TaskUpdate) { f(ctx, u) }

// Errors of task operations; test them with errors.Is.
var (
	ErrNoTask       = errors.New("mesh: no such task")
	ErrTaskRejected = errors.New("mesh: task message not applied")
)

// payloads of task messages
type (
	offerPayload struct {
		ID       string          `json:"id"`
		Kind     string          `json:"kind"`
		To       string          `json:"to,omitempty"`
		Input    json.RawMessage `json:"input,omitempty"`
		Deadline time.Time       `json:"deadline"`
	}
	bidPayload struct {
		Price float64       `json:"price,omitempty"`
		ETA   time.Duration `json:"eta,omitempty"`
		Note  string        `json:"note,omitempty"`
	}
	awardPayload struct {
		To string `json:"to"`
	}
	progressPayload struct {
		Percent float64 `json:"percent"`
		Note    string  `json:"note,omitempty"`
	}
	resultPayload struct {
		Output json.RawMessage `json:"output,omitempty"`
	}
	failPayload struct {
		Reason string `json:"reason"`
	}
)

const taskSchemaPrefix = "depai.task."

// taskView is the node's copy of every task, kept by one ordered consumer
// over DEPAI_TASKS from its first message.
type taskView struct {
	n *Node

	mu       sync.Mutex // guards all below
	tasks    map[string]*Task
	applied  uint64             // last stream sequence applied
	replayTo uint64             // until this seq, history is replayed: no notifications
	outcomes map[uint64]outcome // recent apply results, for writers waiting on their own message
	waiters  map[uint64]chan outcome
	changed  chan struct{} // closed and replaced on every applied message
	handlers map[string]*taskQueue
	timedOut map[string]bool // timeouts already raised
	ready    chan struct{}   // closed once history is replayed
	stream   jetstream.Stream
}

func newTaskView(n *Node) *taskView {
	return &taskView{n: n, tasks: map[string]*Task{}, outcomes: map[uint64]outcome{}, waiters: map[uint64]chan outcome{},
		changed: make(chan struct{}), handlers: map[string]*taskQueue{}, timedOut: map[string]bool{}, ready: make(chan struct{})}
}

func (v *taskView) start() { v.n.goSafe(v.run) }

func (v *taskView) run() {
	n := v.n
	ctx := n.ctx
	var stream jetstream.Stream
	if retry(ctx, n.log, "tasks stream", func() error {
		var err error
		stream, err = ensureStream(ctx, n.js, jetstream.StreamConfig{
			Name: tasksStream, Description: "depai task delegation", Subjects: []string{tasksSubjects},
			Storage: jetstream.FileStorage, MaxAge: n.cfg.TaskRetention, Duplicates: 2 * time.Minute, Replicas: n.cfg.Replicas,
			MaxMsgSize: int32(n.cfg.Limits.MaxMessageBytes),
		})
		if err != nil {
			return err
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		v.mu.Lock()
		v.replayTo = info.State.LastSeq
		v.stream = stream
		v.mu.Unlock()
		return nil
	}) != nil {
		return
	}
	v.maybeReady()
	n.goSafe(v.timeouts)
	for ctx.Err() == nil {
		if err := v.consume(ctx, stream); err != nil && ctx.Err() == nil {
			n.log.Debug("tasks consumer restarts", "err", err)
			sleepCtx(ctx, 250*time.Millisecond)
		}
	}
}

// consume reads the stream from the message after the last applied one.
func (v *taskView) consume(ctx context.Context, stream jetstream.Stream) error {
	v.mu.Lock()
	start := v.applied + 1
	v.mu.Unlock()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start})
	if err != nil {
		return err
	}
	it, err := cons.Messages(pullOpts()...)
	if err != nil {
		return err
	}
	defer it.Stop()
	// Ends with the node or when this consume returns (cctx), whichever first.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !v.n.goSafe(func() { stopOnDone(cctx, it) }) {
		return ErrClosed
	}
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		v.apply(md.Sequence.Stream, md.Timestamp, m.Subject(), m.Data())
	}
}

// apply applies one stored message and wakes whoever waits for it.
func (v *taskView) apply(seq uint64, at time.Time, subject string, data []byte) {
	v.mu.Lock()
	if seq <= v.applied {
		v.mu.Unlock()
		return
	}
	live := seq > v.replayTo
	u, err := v.applyLocked(seq, at, subject, data, live)
	v.applied = seq
	out := outcome{err: err}
	if u != nil {
		out.task = v.snapshot(&u.Task)
	}
	if ch, ok := v.waiters[seq]; ok {
		ch <- out
		delete(v.waiters, seq)
	} else {
		v.outcomes[seq] = out
		if len(v.outcomes) > 1024 {
			for s := range v.outcomes {
				if s+1024 < seq {
					delete(v.outcomes, s)
				}
			}
		}
	}
	close(v.changed)
	v.changed = make(chan struct{})
	if live && u != nil {
		v.notifyLocked(*u)
	}
	v.mu.Unlock()
	var re *RejectError
	if errors.As(err, &re) {
		v.n.rejectErr(err, v.n.cfg.Name)
	}
	v.maybeReady()
}

func (v *taskView) maybeReady() {
	v.mu.Lock()
	defer v.mu.Unlock()
	select {
	case <-v.ready:
		return
	default:
	}
	if v.stream == nil || v.applied < v.replayTo {
		return
	}
	close(v.ready)
	// History is in: what is pending for local agents now is told once.
	for _, t := range v.sortedLocked() {
		switch {
		case t.State == TaskOffered && !v.expired(t):
			v.notifyLocked(TaskUpdate{Event: EventOffer, Task: *t})
		case (t.State == TaskAccepted || t.State == TaskRunning) && !v.expired(t):
			v.notifyLocked(TaskUpdate{Event: EventResume, Task: *t})
		}
	}
}

func (v *taskView) expired(t *Task) bool { return !time.Now().Before(t.Deadline) }

func (v *taskView) sortedLocked() []*Task {
	ts := make([]*Task, 0, len(v.tasks))
	for _, t := range v.tasks {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *Task) int { return strings.Compare(a.ID, b.ID) })
	return ts
}

// applyLocked checks one message against the task's rules and applies it.
// The returned update is what local handlers are told.
func (v *taskView) applyLocked(seq uint64, at time.Time, subject string, data []byte, live bool) (*TaskUpdate, error) {
	bad := func(env Envelope, f string, a ...any) (*TaskUpdate, error) {
		return nil, &RejectError{Rejection{Time: time.Now(), Reason: ReasonBadTask, Detail: fmt.Sprintf(f, a...), Subject: subject,
			From: env.From, FromName: env.FromName, Schema: env.Schema, Size: len(data)}}
	}
	tok := strings.Split(subject, ".")
	if len(tok) != 5 {
		return bad(Envelope{}, "subject %q: want depai.tasks.ID.SENDER.EVENT", subject)
	}
	id, sender, ev := tok[2], tok[3], TaskEvent(tok[4])
	env, err := v.n.verify.openStored(subject, data, live)
	if err != nil {
		return nil, err
	}
	if env.FromName != sender || env.Schema != taskSchemaPrefix+string(ev) {
		return bad(env, "envelope from %q schema %q on subject %s", env.FromName, env.Schema, subject)
	}
	t := v.tasks[id]
	if ev == EventOffer {
		if t != nil {
			return bad(env, "task %s already exists", id)
		}
		var p offerPayload
		if err := decodeStrict(env.Payload, &p); err != nil || p.ID != id || !at.Before(p.Deadline) {
			return bad(env, "offer %s: want a payload with this id and a future deadline (%v)", id, err)
		}
		t = &Task{ID: id, Kind: p.Kind, From: sender, FromDID: env.From, To: p.To, ToDID: env.To, Input: p.Input,
			Deadline: p.Deadline, State: TaskOffered, Created: at}
		v.tasks[id] = t
		t.Updated, t.Seq = at, seq
		return &TaskUpdate{Event: ev, Task: *t}, nil
	}
	if t == nil {
		return bad(env, "%s for unknown task %s", ev, id)
	}
	if t.State.Terminal() {
		return bad(env, "%s for task %s, which is %s", ev, id, t.State)
	}
	if !at.Before(t.Deadline) {
		return bad(env, "%s for task %s stored at %s, after its deadline %s", ev, id, at.Format(time.RFC3339Nano), t.Deadline.Format(time.RFC3339Nano))
	}
	isAssignee := t.To == sender && t.ToDID == env.From
	isDelegator := t.From == sender && t.FromDID == env.From
	switch ev {
	case EventBid:
		var p bidPayload
		if t.State != TaskOffered || t.To != "" || isDelegator || decodeStrict(env.Payload, &p) != nil {
			return bad(env, "bid on task %s: only on an open offer, by another agent, with a bid payload", id)
		}
		t.Bids = append(t.Bids, Bid{Agent: sender, DID: env.From, Price: p.Price, ETA: p.ETA, Note: p.Note})
	case EventAward:
		var p awardPayload
		if !isDelegator || t.State != TaskOffered || t.To != "" || decodeStrict(env.Payload, &p) != nil {
			return bad(env, "award of task %s: only by its delegator, on an open offer", id)
		}
		i := slices.IndexFunc(t.Bids, func(b Bid) bool { return b.Agent == p.To })
		if i < 0 {
			return bad(env, "award of task %s to %q, who did not bid", id, p.To)
		}
		t.To, t.ToDID = t.Bids[i].Agent, t.Bids[i].DID
	case EventAccept:
		if t.State != TaskOffered || isDelegator || (t.To != "" && !isAssignee) {
			return bad(env, "accept of task %s by %s: it is %s for %q", id, sender, t.State, t.To)
		}
		t.To, t.ToDID, t.State = sender, env.From, TaskAccepted
	case EventProgress:
		var p progressPayload
		if !isAssignee || (t.State != TaskAccepted && t.State != TaskRunning) || decodeStrict(env.Payload, &p) != nil {
			return bad(env, "progress on task %s by %s: only its assignee, once accepted", id, sender)
		}
		t.State, t.Percent, t.Note = TaskRunning, p.Percent, p.Note
	case EventResult:
		var p resultPayload
		if !isAssignee || (t.State != TaskAccepted && t.State != TaskRunning) || decodeStrict(env.Payload, &p) != nil {
			return bad(env, "result of task %s by %s: only its assignee, once accepted", id, sender)
		}
		t.State, t.Output, t.Percent = TaskDone, p.Output, 100
	case EventFail:
		var p failPayload
		if !(isAssignee || isDelegator) || decodeStrict(env.Payload, &p) != nil {
			return bad(env, "failure of task %s by %s: only its assignee or delegator", id, sender)
		}
		t.State, t.Error = TaskFailed, p.Reason
	default:
		return bad(env, "unknown task event %q", ev)
	}
	t.Updated, t.Seq = at, seq
	return &TaskUpdate{Event: ev, Task: *t}, nil
}

// notifyLocked queues u for the local agents it concerns.
func (v *taskView) notifyLocked(u TaskUpdate) {
	t := u.Task
	var to []string
	switch u.Event {
	case EventOffer:
		if t.To != "" {
			to = []string{t.To}
		} else {
			for name := range v.handlers {
				if name != t.From {
					to = append(to, name)
				}
			}
		}
	case EventAward, EventResume:
		to = []string{t.To}
	case EventFail:
		to = []string{t.From, t.To}
	case EventTimeout:
		to = []string{t.From}
		if t.To != "" {
			to = append(to, t.To)
		}
	default:
		to = []string{t.From}
	}
	for _, name := range to {
		if q, ok := v.handlers[name]; ok {
			q.push(u)
		}
	}
}

// timeouts raises EventTimeout for tasks whose deadline passed unfinished.
func (v *taskView) timeouts() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-v.n.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		v.mu.Lock()
		for _, t := range v.tasks {
			if !t.State.Terminal() && !now.Before(t.Deadline) && !v.timedOut[t.ID] {
				v.timedOut[t.ID] = true
				c := *t
				c.State = TaskTimedOut
				v.notifyLocked(TaskUpdate{Event: EventTimeout, Task: c})
			}
		}
		v.mu.Unlock()
	}
}

// get returns the task with its state as of now.
func (v *taskView) get(id string) (Task, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.tasks[id]
	if !ok {
		return Task{}, false
	}
	return v.snapshot(t), true
}

func (v *taskView) snapshot(t *Task) Task {
	c := *t
	c.Bids = slices.Clone(t.Bids)
	if !c.State.Terminal() && !time.Now().Before(c.Deadline) {
		c.State = TaskTimedOut
	}
	return c
}

// outcome is what applying one message did: the task as that message
// left it, or why the task's rules refused it.
type outcome struct {
	task Task
	err  error
}

// waitApplied waits until the message at seq is applied and returns the
// task as it left it, or why it was refused.
func (v *taskView) waitApplied(ctx context.Context, seq uint64, id string) (Task, error) {
	v.mu.Lock()
	if seq <= v.applied {
		out, ok := v.outcomes[seq]
		delete(v.outcomes, seq)
		if !ok {
			// Applied long ago and its outcome forgotten: the task as it is now.
			t := v.tasks[id]
			v.mu.Unlock()
			if t == nil {
				return Task{}, fmt.Errorf("%w: %s", ErrNoTask, id)
			}
			return v.snapshot(t), nil
		}
		v.mu.Unlock()
		return out.task, out.err
	}
	ch := make(chan outcome, 1)
	v.waiters[seq] = ch
	v.mu.Unlock()
	select {
	case out := <-ch:
		return out.task, out.err
	case <-ctx.Done():
		v.mu.Lock()
		delete(v.waiters, seq)
		v.mu.Unlock()
		return Task{}, fmt.Errorf("mesh: waiting for task message %d to apply: %w", seq, ctx.Err())
	}
}

// taskQueue delivers updates to one agent's handler in order, from one
// goroutine, without ever blocking the view.
type taskQueue struct {
	mu      sync.Mutex
	pending []TaskUpdate
	wake    chan struct{}
}

func (q *taskQueue) push(u TaskUpdate) {
	q.mu.Lock()
	q.pending = append(q.pending, u)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *taskQueue) run(ctx context.Context, h TaskHandler) {
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		for _, u := range batch {
			if ctx.Err() != nil {
				return
			}
			h.HandleTask(ctx, u)
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
	}
}

// ServeTasks routes the task updates that concern the agent to h. Call it
// before the node has replayed its history to be told of pending offers
// and tasks to resume (Start replays in the background; the calls come
// once ServeTasks is in place).
func (a *Agent) ServeTasks(h TaskHandler) error {
	v := a.node.tasks
	q := &taskQueue{wake: make(chan struct{}, 1)}
	v.mu.Lock()
	if _, ok := v.handlers[a.cfg.Name]; ok {
		v.mu.Unlock()
		return fmt.Errorf("mesh: agent %s already serves tasks", a.cfg.Name)
	}
	v.handlers[a.cfg.Name] = q
	select {
	case <-v.ready:
		// History was replayed before this handler came: tell it now what is pending.
		for _, t := range v.sortedLocked() {
			switch {
			case t.State == TaskOffered && !v.expired(t) && (t.To == a.cfg.Name || t.To == "" && t.From != a.cfg.Name):
				q.push(TaskUpdate{Event: EventOffer, Task: v.snapshot(t)})
			case (t.State == TaskAccepted || t.State == TaskRunning) && t.To == a.cfg.Name && !v.expired(t):
				q.push(TaskUpdate{Event: EventResume, Task: v.snapshot(t)})
			}
		}
	default:
	}
	v.mu.Unlock()
	if !a.node.goSafe(func() { q.run(a.node.ctx, h) }) {
		return ErrClosed
	}
	return nil
}

// publishTask signs and stores one task message and waits until this node
// has applied it, so the caller learns whether the task's rules took it,
// and returns the task as that message left it.
func (a *Agent) publishTask(ctx context.Context, id string, ev TaskEvent, toDID string, payload any) (Task, error) {
	v := a.node.tasks
	p, err := json.Marshal(payload)
	if err != nil {
		return Task{}, err
	}
	e := Envelope{Schema: taskSchemaPrefix + string(ev), Version: 1, To: toDID, Payload: p, Expires: time.Now().Add(time.Minute)}
	data, err := seal(a.cfg.Identity, a.cfg.Name, &e)
	if err != nil {
		return Task{}, err
	}
	select {
	case <-v.ready:
	case <-ctx.Done():
		return Task{}, fmt.Errorf("mesh: task %s: the tasks stream is not reachable yet: %w", id, ctx.Err())
	}
	// The nonce as message ID: a retried publish is stored once.
	ack, err := a.js.Publish(ctx, taskSubject(id, a.cfg.Name, ev), data, jetstream.WithMsgID(e.Nonce))
	if err != nil {
		return Task{}, fmt.Errorf("mesh: task %s: %s: %w", id, ev, err)
	}
	t, err := v.waitApplied(ctx, ack.Sequence, id)
	if err != nil {
		var re *RejectError
		if errors.As(err, &re) {
			return Task{}, fmt.Errorf("%w: %s", ErrTaskRejected, re.Detail)
		}
		return Task{}, err
	}
	return t, nil
}

// Delegate offers a task and returns it as offered.
func (a *Agent) Delegate(ctx context.Context, o Offer) (Task, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	toDID := ""
	if o.To != "" {
		var err error
		if toDID, err = a.node.resolve(ctx, o.To); err != nil {
			return Task{}, err
		}
	}
	id := ulid.Make().String()
	p := offerPayload{ID: id, Kind: o.Kind, To: o.To, Input: o.Input, Deadline: time.Now().Add(o.Timeout).UTC().Round(0)}
	return a.publishTask(ctx, id, EventOffer, toDID, p)
}

func (a *Agent) counterpart(id string) (string, error) {
	t, ok := a.node.tasks.get(id)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNoTask, id)
	}
	if t.From == a.cfg.Name {
		return t.ToDID, nil
	}
	return t.FromDID, nil
}

func (a *Agent) step(ctx context.Context, id string, ev TaskEvent, payload any) (Task, error) {
	to, err := a.counterpart(id)
	if err != nil {
		return Task{}, err
	}
	return a.publishTask(ctx, id, ev, to, payload)
}

// Bid offers to take an open task.
func (a *Agent) Bid(ctx context.Context, id string, b Bid) (Task, error) {
	return a.step(ctx, id, EventBid, bidPayload{Price: b.Price, ETA: b.ETA, Note: b.Note})
}

// Award gives an open task to one of its bidders, who then accepts it.
func (a *Agent) Award(ctx context.Context, id, bidder string) (Task, error) {
	return a.step(ctx, id, EventAward, awardPayload{To: bidder})
}

// Accept takes a task offered to this agent (or an open one: the first
// accept in stream order wins; a later one returns ErrTaskRejected).
func (a *Agent) Accept(ctx context.Context, id string) (Task, error) {
	return a.step(ctx, id, EventAccept, struct{}{})
}

// Progress reports how far the agent is with a task it accepted.
func (a *Agent) Progress(ctx context.Context, id string, percent float64, note string) (Task, error) {
	return a.step(ctx, id, EventProgress, progressPayload{Percent: percent, Note: note})
}

// Complete delivers the result of a task the agent accepted. After the
// deadline it returns ErrTaskRejected: the delegator has been told the
// task timed out.
func (a *Agent) Complete(ctx context.Context, id string, output json.RawMessage) (Task, error) {
	return a.step(ctx, id, EventResult, resultPayload{Output: output})
}

// Fail ends a task: its assignee gives up, or its delegator cancels it.
func (a *Agent) Fail(ctx context.Context, id, reason string) (Task, error) {
	return a.step(ctx, id, EventFail, failPayload{Reason: reason})
}

// Wait blocks until the task is done, failed or timed out, or ctx ends.
func (n *Node) Wait(ctx context.Context, id string) (Task, error) {
	v := n.tasks
	for {
		v.mu.Lock()
		ch := v.changed
		t, ok := v.tasks[id]
		var snap Task
		if ok {
			snap = v.snapshot(t)
		}
		v.mu.Unlock()
		if !ok {
			return Task{}, fmt.Errorf("%w: %s", ErrNoTask, id)
		}
		if snap.State.Terminal() {
			return snap, nil
		}
		timer := time.NewTimer(time.Until(snap.Deadline))
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return snap, ctx.Err()
		}
		timer.Stop()
	}
}

// TaskFilter selects tasks; zero fields do not filter.
type TaskFilter struct {
	Agent string // delegated by or to this agent
	State TaskState
}

// Tasks lists the tasks of the fleet this node knows, newest first.
func (n *Node) Tasks(f TaskFilter) []Task {
	v := n.tasks
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Task
	for _, t := range v.tasks {
		s := v.snapshot(t)
		if f.Agent != "" && s.From != f.Agent && s.To != f.Agent {
			continue
		}
		if f.State != "" && s.State != f.State {
			continue
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Task) int { return strings.Compare(b.ID, a.ID) })
	return out
}

// Task returns one task.
func (n *Node) Task(id string) (Task, bool) { return n.tasks.get(id) }
