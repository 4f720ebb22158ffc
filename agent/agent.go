package agent

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
)

// Agent is one configured agent: a turn runner behind a bounded inbox, a
// command table, and a plugin manager.
type Agent struct {
	cfg     config.Agent
	fleet   *Fleet
	log     *slog.Logger
	model   llm.Model // nil: no endpoint configured
	mem     *memory.ScopedStore
	tools   *tool.Set
	plugins *pluginManager
	inbox   *inbox
	ns      string // the agent's own namespace
	started time.Time

	storing  pending // turn records still being written after their answer
	turns    atomic.Uint64
	lastTurn atomic.Int64 // unix nanos
	// unanswered counts the running turns that have not yet answered (or
	// failed): each will write its record soon (see turn).
	unanswered atomic.Int64

	mu       sync.Mutex
	inflight map[uint64]context.CancelFunc // running turns; the agent is busy while any is
	nextTurn uint64

	histMu  sync.Mutex
	history []pastTurn // the newest turns, oldest first: the conversation a turn sees
	since   uint64     // the Seq after which turns count as this conversation's (/reset)
}

func newAgent(ctx context.Context, f *Fleet, cfg config.Agent) (*Agent, error) {
	a := &Agent{
		cfg:      cfg,
		fleet:    f,
		log:      f.log.With("agent", cfg.Name),
		tools:    tool.NewSet(),
		ns:       "agent/" + cfg.Name,
		started:  time.Now(),
		inflight: map[uint64]context.CancelFunc{},
	}
	mem, err := memory.Scoped(f.store, memory.Grants{Principal: cfg.Name, Read: cfg.Memory.Read, Write: cfg.Memory.Write, OnDenied: a.memoryDenied(policy.Principal{Kind: policy.PrincipalAgent, ID: cfg.Name})})
	if err != nil {
		return nil, err
	}
	a.mem = mem
	if err := a.loadHistory(ctx); err != nil {
		return nil, err
	}
	if cfg.Model.BaseURL != "" {
		models := f.opts.Models
		if models == nil {
			models = f.openAIModel
		}
		m, err := models(ctx, cfg.Name, cfg.Model)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		a.model = m
	}
	builtins, err := a.builtinTools()
	if err != nil {
		return nil, err
	}
	if err := a.tools.Add(builtins...); err != nil {
		return nil, err
	}
	for _, t := range f.opts.Tools[cfg.Name] {
		s := t.Spec()
		if err := f.policy.CheckTool(cfg.Name, sourceName(s.Source), s.Name, s.Effect); err != nil {
			return nil, err
		}
	}
	if err := a.tools.Add(f.opts.Tools[cfg.Name]...); err != nil {
		return nil, fmt.Errorf("in-process tools: %w", err)
	}
	a.plugins = newPluginManager(a)
	a.inbox = newInbox(a, cfg.Limits.Inbox, cfg.Limits.Concurrency)
	return a, nil
}

func sourceName(s string) string {
	if s == "" {
		return "the program embedding depai"
	}
	return s
}

// openAIModel is the default ModelFactory.
func (f *Fleet) openAIModel(_ context.Context, _ string, m config.Model) (llm.Model, error) {
	key, _ := f.opts.Secrets(m.APIKeyEnv)
	return llm.NewOpenAI(llm.OpenAIConfig{
		BaseURL: m.BaseURL, Model: m.Model, APIKey: key,
		Timeout: m.Timeout.Std(), FirstByteTimeout: m.FirstByteTimeout.Std(), NoStream: !m.Streaming(),
		Logger: f.log,
	})
}

// memoryDenied reports a scoped store's refusal to the audit log.
func (a *Agent) memoryDenied(p policy.Principal) func(context.Context, memory.Denial) {
	return func(ctx context.Context, d memory.Denial) {
		_, err := a.fleet.audit.Write(context.WithoutCancel(ctx), policy.Entry{
			Agent: a.cfg.Name, Principal: p, Kind: policy.ActionHost, Action: "memory." + d.Op, Target: d.Namespace,
			Phase: policy.PhaseDecision, Decision: policy.Deny, Rule: "memory grants", Reason: d.Reason,
		})
		if err != nil {
			a.log.Error("audit: memory denial not recorded", "namespace", d.Namespace, "err", err)
		}
	}
}

// start begins the agent's background work: its inbox, schedules and wakes.
func (a *Agent) start() {
	a.inbox.start()
	a.startSchedules()
	a.startWakes()
}

// Name is the agent's configured name.
func (a *Agent) Name() string { return a.cfg.Name }

// Tools is the set of tools the agent can call; the plugin manager adds to it.
func (a *Agent) Tools() *tool.Set { return a.tools }

// Status reports the agent's state.
func (a *Agent) Status() Status {
	s := Status{
		Name:    a.cfg.Name,
		Role:    a.cfg.Role,
		State:   "idle",
		Model:   "none",
		Tools:   a.tools.Len(),
		Turns:   a.turns.Load(),
		Queued:  a.inbox.queued(),
		Started: a.started,
		Memory:  a.fleet.recall.Mode(),
		Robot:   a.robotState(),

		Geofence: a.cfg.Safety.Motion.Geofence,
	}
	for _, r := range a.cfg.Safety.Actuators {
		s.KeepOut = append(s.KeepOut, r.KeepOut...)
	}
	if a.model != nil {
		s.Model = a.cfg.Model.Model + " @ " + a.cfg.Model.BaseURL
	}
	if n := a.lastTurn.Load(); n != 0 {
		s.LastTurn = time.Unix(0, n)
	}
	switch {
	case a.fleet.Stopped():
		s.State = "stopped"
	case !a.plugins.done():
		s.State = "starting"
	case a.running() > 0:
		s.State = "busy"
	}
	return s
}

// Handle runs one input: an operator command (text starting with "/") at
// once, or a turn through the agent's inbox. An operator input without a
// Role is the embedding program's own, with admin rights. It streams the
// events; the last is an EventReply (a command), an EventStored (a turn
// that answered, once its record is durable) or an EventError. Stopping
// the iteration before the answer cancels the turn; stopping after it
// leaves the turn's record to be written (Close waits for it), but then
// nothing says it became durable.
func (a *Agent) Handle(ctx context.Context, in Input) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if in.Source == "" {
			in.Source = SourceOperator
		}
		if in.Source == SourceOperator && in.Role == "" {
			// An operator input without a role comes from the program that
			// embeds the fleet, not over the API (which always sets one).
			in.Role = policy.RoleAdmin
			if in.From == "" {
				in.From = "local"
			}
		}
		emit := func(ev Event) bool {
			if a.fleet.opts.Events != nil {
				a.fleet.opts.Events(a.cfg.Name, ev)
			}
			return yield(ev, nil)
		}
		text := strings.TrimSpace(in.Text)
		if strings.HasPrefix(text, "/") && (in.Source == SourceOperator || in.Source == SourceSchedule) {
			emit(a.command(ctx, in, text))
			return
		}
		a.inbox.run(ctx, in, emit)
	}
}

// Ask runs an input to completion and returns the reply text once the
// turn's record is durable; a turn that failed (or whose record could not
// be stored) is a *TurnError.
func (a *Agent) Ask(ctx context.Context, in Input) (string, error) {
	var reply string
	for ev, err := range a.Handle(ctx, in) {
		if err != nil {
			return "", err
		}
		switch ev.Type {
		case EventReply:
			reply = ev.Text
		case EventError:
			return "", &TurnError{Code: ev.Code, Message: ev.Error}
		}
	}
	return reply, nil
}

// TurnError is a turn that ended with an EventError.
type TurnError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *TurnError) Error() string { return e.Code + ": " + e.Message }

// track registers a running turn's cancel func so /stop can reach it.
func (a *Agent) track(cancel context.CancelFunc) (release func()) {
	a.mu.Lock()
	id := a.nextTurn
	a.nextTurn++
	a.inflight[id] = cancel
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		delete(a.inflight, id)
		a.mu.Unlock()
	}
}

// running is the number of turns in flight.
func (a *Agent) running() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.inflight)
}

// cancelTurns cancels every running turn and reports how many there were.
func (a *Agent) cancelTurns() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cancel := range a.inflight {
		cancel()
	}
	return len(a.inflight)
}
