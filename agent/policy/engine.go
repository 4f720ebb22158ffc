package policy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/wallet/spend"
	"github.com/depai/depai/sdk/wire"
)

// Defaults of an Engine's Config.
const (
	DefaultApprovalTimeout = 5 * time.Minute
	DefaultMaxDepth        = 4
)

// Rules are one agent's part of the policy, from its config.
type Rules struct {
	Actuators []config.ActuatorRule
	// Operators may command the agent; empty: every operator. Viewers may
	// still read it and anyone with a token may engage the e-stop.
	Operators []string
	// MaxDepth ends chains of wakes, emits and agent messages; 0: DefaultMaxDepth.
	MaxDepth int
	// Motion are the rules decided on where the robot is (Config.Poses).
	Motion config.Motion
	// Spend is the spend policy (safety.spend) and Ledger the durable
	// record it is checked against, which the caller opens and closes.
	// Without limits every payment is refused.
	Spend  config.Spend
	Ledger *spend.Ledger
	// AgentCalls restrict the tools other agents may call (principal kind
	// agent); nil: any tool.
	AgentCalls []config.AgentCall
}

// RulesOf is an agent's policy as its config states it.
func RulesOf(a config.Agent) Rules {
	return Rules{Actuators: a.Safety.Actuators, Operators: a.Operators, MaxDepth: a.Limits.Depth, Motion: a.Safety.Motion, Spend: a.Safety.Spend, AgentCalls: a.Safety.AgentCalls}
}

// Config configures an Engine.
type Config struct {
	Log *Log // required: where every decision is recorded
	// State keeps the e-stop and pending approvals across restarts.
	// Required.
	State *State
	// Agents are the rules of each agent, by name. An agent that is not
	// listed gets no actuator rules and accepts every operator.
	Agents          map[string]Rules
	ApprovalTimeout time.Duration // 0: DefaultApprovalTimeout
	// Poses says where each agent's robot is, for the motion rules. Nil: no
	// robot reports a pose, and a rule that needs one refuses every move.
	Poses Poses
	// OnDecision is told of every decision Authorize makes (for metrics);
	// it must not block.
	OnDecision func(Action, Decision)
	Logger     *slog.Logger
	Now        func() time.Time // nil: time.Now
}

// Engine is the policy engine. It is safe for concurrent use.
type Engine struct {
	cfg    Config
	log    *Log
	logger *slog.Logger
	now    func() time.Time
	agents map[string]*agentRules

	// mu guards the e-stop hooks and the approvals waiting in this
	// process. Lock order: Engine.mu, then State.mu, then Log.mu.
	mu      sync.Mutex
	onStop  []func(context.Context)
	waiting map[string]chan Decision // approval id → its waiter

	denials denialCoalescer
}

type agentRules struct {
	Rules
	gates map[string]*gate // by tool name
	spend *spendRules      // nil: no payment is allowed
}

var _ Gate = (*Engine)(nil)

// New returns an Engine over cfg. Approvals left pending by an earlier run
// are denied now, on the record: nobody is waiting for them any more.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Log == nil || cfg.State == nil {
		return nil, errors.New("policy: Config.Log and Config.State are required")
	}
	if cfg.ApprovalTimeout <= 0 {
		cfg.ApprovalTimeout = DefaultApprovalTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poses == nil {
		cfg.Poses = func(string) (Pose, bool) { return Pose{}, false }
	}
	e := &Engine{cfg: cfg, log: cfg.Log, logger: cfg.Logger, now: cfg.Now, agents: map[string]*agentRules{}, waiting: map[string]chan Decision{}}
	e.denials.window = time.Second
	for name, r := range cfg.Agents {
		ar := &agentRules{Rules: r, gates: map[string]*gate{}}
		if ar.MaxDepth <= 0 {
			ar.MaxDepth = DefaultMaxDepth
		}
		for _, rule := range r.Actuators {
			g, err := newGate(rule)
			if err != nil {
				return nil, fmt.Errorf("policy: agent %s: %w", name, err)
			}
			ar.gates[rule.Tool] = g
		}
		sr, err := compileSpend(r.Spend, r.Ledger)
		if err != nil {
			return nil, fmt.Errorf("policy: agent %s: %w", name, err)
		}
		ar.spend = sr
		e.agents[name] = ar
	}
	// Approvals of an earlier run are denied and dropped from the state,
	// and a damaged state is replaced by the engaged stop; an unchanged
	// state is not rewritten (two fsyncs on every start).
	taken := cfg.State.takeApprovals()
	for _, ap := range taken {
		_, err := e.log.Write(ctx, Entry{
			Agent: ap.Action.Agent, Principal: Principal{Kind: PrincipalSystem}, Kind: ap.Action.Kind,
			Action: ap.Action.Name, Target: ap.Action.Target, Phase: PhaseOutcome, Decision: Deny,
			Reason: "the approval was still pending when depai stopped; nobody waits for it now", Ref: ap.Ref,
		})
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	if len(taken) > 0 || cfg.State.Broken() != "" {
		if err := cfg.State.save(); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	return e, nil
}

// agentMayCall reports whether agent from may call tool under
// safety.agent_calls.
func (r *agentRules) agentMayCall(from, tool string) bool {
	if r.AgentCalls == nil {
		return true
	}
	for _, c := range r.AgentCalls {
		if (c.From == "*" || c.From == from) && c.Allows(tool) {
			return true
		}
	}
	return false
}

func (e *Engine) rules(agent string) *agentRules {
	if r := e.agents[agent]; r != nil {
		return r
	}
	return &agentRules{Rules: Rules{MaxDepth: DefaultMaxDepth}}
}

// EffectOf is the effect the engine enforces for an agent's tool: a tool a
// safety rule names is an actuator whatever its provider declares.
func (e *Engine) EffectOf(agent, tool string, declared wire.Effect) wire.Effect {
	if e.rules(agent).gates[tool] != nil {
		return wire.EffectActuator
	}
	return declared
}

// CheckTool refuses, at load time, a tool that a safety rule names but
// whose provider does not declare it an actuator: the plugin is mistaken
// about what it does, or lying.
func (e *Engine) CheckTool(agent, source, tool string, declared wire.Effect) error {
	if e.rules(agent).gates[tool] == nil || declared == wire.EffectActuator {
		return nil
	}
	what := "no effect"
	if declared != wire.EffectNone {
		what = "effect " + string(declared)
	}
	return fmt.Errorf("tool %s of %s is named by safety.actuators of agent %s but declares %s; a tool a safety rule gates must declare itself an actuator (sdk.Actuator())", tool, source, agent, what)
}

// Stopped reports whether the emergency stop is engaged.
func (e *Engine) Stopped() bool { return e.cfg.State.EStop().Engaged }

// EStop is the emergency stop's state.
func (e *Engine) EStop() EStop { return e.cfg.State.EStop() }

// OnStop registers fn to run when the emergency stop is engaged: cancelling
// turns, stopping actuators. fn must not block for long.
func (e *Engine) OnStop(fn func(context.Context)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onStop = append(e.onStop, fn)
}

// Stop engages the emergency stop: it is made durable first, then every
// OnStop hook runs, then it is audited. The stop holds even if the record
// cannot be written; the error says so.
func (e *Engine) Stop(ctx context.Context, by Principal, reason string) error {
	serr := e.cfg.State.setEStop(EStop{Engaged: true, By: by.String(), At: e.now().UTC(), Reason: reason})
	e.mu.Lock()
	hooks := slices.Clone(e.onStop)
	e.mu.Unlock()
	for _, fn := range hooks {
		fn(ctx)
	}
	_, aerr := e.log.Write(ctx, Entry{Principal: by, Kind: ActionCommand, Action: "estop.engage", Target: "fleet", Phase: PhaseEvent, Decision: Allow, Reason: reason})
	return errors.Join(serr, aerr)
}

// Resume releases the emergency stop. Only an admin operator may; the
// release is on record before it takes effect.
func (e *Engine) Resume(ctx context.Context, by Principal) error {
	if by.Kind != PrincipalOperator || !by.Role.AtLeast(RoleAdmin) {
		reason := fmt.Sprintf("releasing the emergency stop needs an admin operator; %s is not one", by)
		_, _ = e.log.Write(ctx, Entry{Principal: by, Kind: ActionCommand, Action: "estop.release", Target: "fleet", Phase: PhaseDecision, Decision: Deny, Reason: reason})
		return &wire.Error{Code: wire.CodeForbidden, Message: reason}
	}
	if _, err := e.log.Write(ctx, Entry{Principal: by, Kind: ActionCommand, Action: "estop.release", Target: "fleet", Phase: PhaseEvent, Decision: Allow}); err != nil {
		return fmt.Errorf("emergency stop not released: %w", err)
	}
	return e.cfg.State.setEStop(EStop{})
}

// Teleop gives an operator exclusive control of an agent's robot (on), or
// releases it: while held, every other principal's actuator calls are
// refused, and the holder's own still pass the hard limits. Taking it from
// another operator needs an admin.
func (e *Engine) Teleop(ctx context.Context, agent string, by Principal, on bool) error {
	if by.Kind != PrincipalOperator || !by.Role.AtLeast(RoleOperator) {
		return &wire.Error{Code: wire.CodeForbidden, Message: fmt.Sprintf("teleop needs the operator role; %s has %s", by, roleName(by.Role))}
	}
	holder, held := e.cfg.State.Teleop(agent)
	if held && holder != by.ID && !by.Role.AtLeast(RoleAdmin) {
		return &wire.Error{Code: wire.CodeDenied, Message: fmt.Sprintf("operator %s holds teleop control of %s; only they or an admin may change it", holder, agent)}
	}
	next, action := by.ID, "teleop.take"
	if !on {
		next, action = "", "teleop.release"
	}
	if _, err := e.log.Write(ctx, Entry{Agent: agent, Principal: by, Kind: ActionCommand, Action: action, Target: agent, Phase: PhaseEvent, Decision: Allow}); err != nil {
		return fmt.Errorf("teleop not changed: %w", err)
	}
	return e.cfg.State.setTeleop(agent, next)
}

// TeleopHolder is the operator holding teleop control of an agent, if any.
func (e *Engine) TeleopHolder(agent string) (string, bool) { return e.cfg.State.Teleop(agent) }

// Decide decides a without recording it or waiting for anyone. Authorize
// is what callers use; Decide is for showing what would happen.
func (e *Engine) Decide(_ context.Context, a Action) Decision {
	r := e.rules(a.Agent)
	switch a.Kind {
	case ActionCommand:
		return e.decideCommand(r, a)
	case ActionMessage:
		if a.Depth > r.MaxDepth {
			return Decision{Verdict: Deny, Rule: "limits.depth", Reason: fmt.Sprintf("this input is %d hops from its cause (%s), past the limit of %d; chains of agents waking each other end here", a.Depth, a.Principal, r.MaxDepth)}
		}
		return Decision{Verdict: Allow}
	}
	d := Decision{Verdict: Allow, Effect: a.Effect}
	if a.Kind == ActionTool {
		d.Effect = e.EffectOf(a.Agent, a.Name, a.Effect)
	}
	if d.Effect.Gated() && e.Stopped() {
		d.Verdict, d.Rule = Deny, "estop"
		d.Reason = fmt.Sprintf("%s is an %s action and the emergency stop is engaged; an admin must /resume first", a.Name, d.Effect)
		return d
	}
	if a.Principal.Kind == PrincipalOperator && !a.Principal.Role.AtLeast(RoleOperator) {
		d.Verdict, d.Rule = Deny, ruleRoles
		d.Reason = fmt.Sprintf("%s may only read (role %s); calling %s needs the operator role", a.Principal.ID, roleName(a.Principal.Role), a.Name)
		return d
	}
	if a.Kind == ActionTool && a.Principal.Kind == PrincipalAgent && !r.agentMayCall(a.Principal.ID, a.Name) {
		d.Verdict, d.Rule = Deny, "safety.agent_calls"
		d.Reason = fmt.Sprintf("agent %s may not call %s on %s: safety.agent_calls does not list it for that agent", a.Principal.ID, a.Name, a.Agent)
		return d
	}
	switch d.Effect {
	case wire.EffectPayment:
		return e.decidePayment(r, a, d)
	case wire.EffectActuator:
		if holder, held := e.cfg.State.Teleop(a.Agent); held && !(a.Principal.Kind == PrincipalOperator && a.Principal.ID == holder) {
			d.Verdict, d.Rule = Deny, "teleop"
			d.Reason = fmt.Sprintf("operator %s holds teleop control of %s; %s may not move it until /teleop %s off", holder, a.Agent, a.Principal, a.Agent)
			return d
		}
		var pose *Pose
		if p, ok := e.cfg.Poses(a.Agent); ok {
			pose = &p
		}
		g := r.gates[a.Name]
		if g == nil {
			g = &gate{key: "safety.motion", rule: config.ActuatorRule{Tool: a.Name}}
		}
		return g.decide(a, d, motionRules{cfg: r.Motion}, pose, e.now())
	}
	return d
}

func roleName(r Role) string {
	if r == "" {
		return "none"
	}
	return string(r)
}

// Authorize implements Gate.
func (e *Engine) Authorize(ctx context.Context, a Action) (func(json.RawMessage, error), error) {
	return e.authorize(ctx, a, e.decide(ctx, a))
}

// decide is Decide, told to Config.OnDecision.
func (e *Engine) decide(ctx context.Context, a Action) Decision {
	d := e.Decide(ctx, a)
	if e.cfg.OnDecision != nil {
		e.cfg.OnDecision(a, d)
	}
	return d
}

// authorize is Authorize of a decided action.
func (e *Engine) authorize(ctx context.Context, a Action, d Decision) (func(json.RawMessage, error), error) {
	if d.Verdict == Deny {
		e.deny(ctx, a, d)
		code := wire.CodeDenied
		if d.Rule == ruleRoles {
			code = wire.CodeForbidden
		}
		return nil, &wire.Error{Code: code, Message: d.Reason}
	}
	if d.Effect == wire.EffectPayment {
		return e.authorizePayment(ctx, a, d)
	}
	if !audited(a, d) {
		return func(json.RawMessage, error) {}, nil
	}
	entry := Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseDecision, Decision: d.Verdict, Reason: d.Reason, Rule: d.Rule, Args: a.Args}
	n, err := e.log.Write(ctx, entry)
	if err != nil {
		// Fail closed: an action that cannot be put on record does not run.
		return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s refused: the audit log cannot record it: %v", a.Name, err), Retryable: true}
	}
	if d.Verdict == NeedsApproval {
		if d, err = e.await(ctx, a, d, n); err != nil {
			return nil, err
		}
	}
	return func(result json.RawMessage, err error) {
		out := Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseOutcome, Ref: n, Result: result}
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) {
				we = &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
			}
			out.Error = we
		}
		if _, werr := e.log.Write(context.WithoutCancel(ctx), out); werr != nil {
			e.logger.Error("audit: outcome not recorded", "action", a.Name, "ref", n, "err", werr)
		}
	}, nil
}

// audited says whether an allowed action is put on record: everything gated
// or approved, every operator command and tool call with an effect, every
// side effect of the model. Reads are not.
func audited(a Action, d Decision) bool {
	switch {
	case d.Verdict == NeedsApproval, d.Effect.Gated():
		return true
	case a.Kind == ActionCommand:
		return commands[a.Name].audited
	case a.Kind == ActionMessage:
		return false
	case a.Kind == ActionHost:
		// A signature with the agent's key is a claim made in its name.
		return d.Effect == wire.EffectPayment || a.Name == wire.HostSign
	}
	return d.Effect != wire.EffectNone
}

// deny records a refusal. A plugin's repeated refusals of the same action
// within a second are coalesced into one record with a count, so a plugin
// that hammers a denied capability cannot flood the log; every other
// principal's refusal is recorded with its arguments.
func (e *Engine) deny(ctx context.Context, a Action, d Decision) {
	count := 1
	if a.Principal.Kind == PrincipalPlugin {
		key := a.Agent + "\x00" + a.Principal.ID + "\x00" + a.Name + "\x00" + a.Target
		if a.Effect == wire.EffectPayment {
			key += "\x00" + string(a.Args) // each distinct payment's refusal is on record
		}
		var write bool
		if count, write = e.denials.add(key, e.now()); !write {
			return
		}
	}
	e.record(ctx, a, d, count)
}

// record writes a refusal standing for count refusals.
func (e *Engine) record(ctx context.Context, a Action, d Decision, count int) {
	entry := Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseDecision, Decision: Deny, Reason: d.Reason, Rule: d.Rule, Args: a.Args, Count: count}
	if _, err := e.log.Write(context.WithoutCancel(ctx), entry); err != nil {
		e.logger.Error("audit: denial not recorded", "action", a.Name, "principal", a.Principal.String(), "err", err)
	}
}

// Denied records a refusal that another part decided (the plugin host's
// grants, coalesced by it into count refusals, whose arguments differ, so
// none are kept): the audit log has one writer, and it is this engine's.
func (e *Engine) Denied(ctx context.Context, a Action, reason string, count int) {
	a.Args = nil
	e.record(ctx, a, Decision{Reason: reason, Rule: "grants"}, count)
}

// Refused records an action that could not be put to the engine at all —
// a payment with no wallet to make it, say — as refused under rule, so
// that an attempt that failed closed is on record like one the engine
// denied.
func (e *Engine) Refused(ctx context.Context, a Action, rule, reason string) {
	e.deny(ctx, a, Decision{Reason: reason, Rule: rule})
}

// denialCoalescer counts refusals by key: the first in a window is written
// at once, later ones are counted and written with the next one after the
// window ends.
type denialCoalescer struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[string]*denialCount
}

type denialCount struct {
	since time.Time
	n     int
}

// add counts a refusal and reports whether to write it now, with how many
// refusals the record stands for.
func (c *denialCoalescer) add(key string, now time.Time) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]*denialCount{}
	}
	dc := c.seen[key]
	if dc == nil || now.Sub(dc.since) >= c.window {
		n := 1
		if dc != nil {
			n += dc.n
		}
		c.seen[key] = &denialCount{since: now}
		if len(c.seen) > 4096 {
			for k, v := range c.seen {
				if now.Sub(v.since) >= c.window {
					delete(c.seen, k)
				}
			}
		}
		return n, true
	}
	dc.n++
	return 0, false
}

// ruleRoles is the rule of a refusal for the principal's role (or for not
// being one of an agent's operators): a wire.CodeForbidden, not a denial
// of the action as such.
const ruleRoles = "operators"

// command is how the policy treats an operator command.
type command struct {
	role    Role // the least role that may run it
	audited bool
}

// commands are the operator commands and who may run them. A command not
// listed needs an admin (fail closed).
var commands = map[string]command{
	"help": {RoleViewer, false}, "status": {RoleViewer, false}, "tools": {RoleViewer, false},
	"agents": {RoleViewer, false}, "memory": {RoleViewer, false}, "approvals": {RoleViewer, false},
	"plugins": {RoleViewer, false}, "audit": {RoleViewer, false}, "earnings": {RoleViewer, false}, "readings": {RoleViewer, false},
	"stop":  {RoleViewer, true},    // anyone with a token may stop the fleet
	"call":  {RoleOperator, false}, // the tool call itself is decided and audited
	"ask":   {RoleOperator, false},
	"reset": {RoleOperator, true}, "approve": {RoleOperator, true}, "deny": {RoleOperator, true},
	"teleop":         {RoleOperator, false}, // the engine audits the change itself
	"resume":         {RoleAdmin, true},
	"plugins.manage": {RoleAdmin, true},
}

func (e *Engine) decideCommand(r *agentRules, a Action) Decision {
	c, ok := commands[a.Name]
	if !ok {
		c = command{role: RoleAdmin, audited: true}
	}
	p := a.Principal
	switch p.Kind {
	case PrincipalOperator:
	case PrincipalSchedule, PrincipalSystem:
		// Config-written commands run with operator rights, never admin.
		p.Role = RoleOperator
	default:
		return Decision{Verdict: Deny, Rule: "commands", Reason: fmt.Sprintf("/%s is an operator command; %s may not run it", a.Name, p)}
	}
	if !p.Role.AtLeast(c.role) {
		return Decision{Verdict: Deny, Rule: ruleRoles, Reason: fmt.Sprintf("/%s needs the %s role; %s has %s", a.Name, c.role, p.ID, roleName(p.Role))}
	}
	if c.role != RoleViewer && p.Kind == PrincipalOperator && len(r.Operators) > 0 && !slices.Contains(r.Operators, p.ID) && !p.Role.AtLeast(RoleAdmin) {
		return Decision{Verdict: Deny, Rule: ruleRoles, Reason: fmt.Sprintf("%s may not command agent %s (its operators: %s)", p.ID, a.Agent, strings.Join(r.Operators, ", "))}
	}
	return Decision{Verdict: Allow}
}

// Approval is an action parked until an operator approves or denies it.
type Approval struct {
	ID      string    `json:"id"`
	Action  Action    `json:"action"`
	Reason  string    `json:"reason"` // why it needs approval
	Rule    string    `json:"rule,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Ref     uint64    `json:"ref"` // the audit entry of the decision
}

// Approvals lists the actions waiting for an operator, oldest first.
func (e *Engine) Approvals() []Approval { return e.cfg.State.Approvals() }

// await parks an action until an operator decides or it times out.
func (e *Engine) await(ctx context.Context, a Action, d Decision, ref uint64) (Decision, error) {
	now := e.now().UTC()
	ap := Approval{ID: ulid.Make().String(), Action: a, Reason: d.Reason, Rule: d.Rule, Created: now, Expires: now.Add(e.cfg.ApprovalTimeout), Ref: ref}
	ch := make(chan Decision, 1)
	e.mu.Lock()
	e.waiting[ap.ID] = ch
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.waiting, ap.ID)
		e.mu.Unlock()
	}()
	if err := e.cfg.State.addApproval(ap); err != nil {
		return d, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s needs approval but it cannot be parked: %v", a.Name, err)}
	}
	e.logger.Warn("action waits for approval", "id", ap.ID, "agent", a.Agent, "action", a.Name, "reason", d.Reason)
	timer := time.NewTimer(e.cfg.ApprovalTimeout)
	defer timer.Stop()
	var out Decision
	select {
	case out = <-ch:
	case <-timer.C:
		out = Decision{Verdict: Deny, Rule: "approval", Reason: fmt.Sprintf("nobody approved %s within %v (approval %s)", a.Name, e.cfg.ApprovalTimeout, ap.ID)}
		e.resolve(ctx, ap.ID, Principal{Kind: PrincipalSystem}, out)
	case <-ctx.Done():
		out = Decision{Verdict: Deny, Rule: "approval", Reason: fmt.Sprintf("%s was cancelled while it waited for approval %s", a.Name, ap.ID)}
		e.resolve(context.WithoutCancel(ctx), ap.ID, Principal{Kind: PrincipalSystem}, out)
	}
	if out.Verdict != Allow {
		return out, &wire.Error{Code: wire.CodeDenied, Message: out.Reason}
	}
	// The e-stop may have been engaged while the action waited.
	if again := e.Decide(ctx, a); again.Verdict == Deny {
		e.deny(ctx, a, again)
		return again, &wire.Error{Code: wire.CodeDenied, Message: again.Reason}
	}
	return out, nil
}

// Approve lets a parked action run.
func (e *Engine) Approve(ctx context.Context, id string, by Principal) error {
	return e.decideApproval(ctx, id, by, Decision{Verdict: Allow, Rule: "approval", Reason: "approved by " + by.String()})
}

// DenyApproval refuses a parked action.
func (e *Engine) DenyApproval(ctx context.Context, id string, by Principal, reason string) error {
	if reason == "" {
		reason = "no reason given"
	}
	return e.decideApproval(ctx, id, by, Decision{Verdict: Deny, Rule: "approval", Reason: fmt.Sprintf("denied by %s: %s", by, reason)})
}

func (e *Engine) decideApproval(ctx context.Context, id string, by Principal, d Decision) error {
	if by.Kind != PrincipalOperator || !by.Role.AtLeast(RoleOperator) {
		return &wire.Error{Code: wire.CodeForbidden, Message: fmt.Sprintf("deciding approvals needs the operator role; %s has %s", by, roleName(by.Role))}
	}
	if !e.resolve(ctx, id, by, d) {
		return &wire.Error{Code: wire.CodeNotFound, Message: fmt.Sprintf("no pending approval %q (/approvals lists them)", id)}
	}
	return nil
}

// resolve records d for a pending approval and hands it to its waiter. It
// reports whether the approval was pending.
func (e *Engine) resolve(ctx context.Context, id string, by Principal, d Decision) bool {
	ap, ok := e.cfg.State.removeApproval(id)
	if !ok {
		return false
	}
	if _, err := e.log.Write(ctx, Entry{Agent: ap.Action.Agent, Principal: by, Kind: ap.Action.Kind, Action: ap.Action.Name, Target: ap.Action.Target, Phase: PhaseDecision, Decision: d.Verdict, Reason: d.Reason, Rule: d.Rule, Ref: ap.Ref}); err != nil && d.Verdict == Allow {
		d = Decision{Verdict: Deny, Rule: "audit", Reason: fmt.Sprintf("the approval could not be recorded: %v", err)}
	}
	e.mu.Lock()
	ch := e.waiting[id]
	e.mu.Unlock()
	if ch != nil {
		ch <- d
	}
	return true
}

// gate is one actuator rule with its rate state.
type gate struct {
	rule   config.ActuatorRule
	key    string // the rule's name in the config, for reasons
	rate   float64
	burst  float64
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newGate(r config.ActuatorRule) (*gate, error) {
	g := &gate{rule: r, key: "safety.actuators[" + r.Tool + "]"}
	if r.MaxRate != "" {
		n, per, err := r.Rate()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", g.key, err)
		}
		g.rate = n / per.Seconds()
		g.burst = math.Max(1, n)
		g.tokens = g.burst
	}
	return g, nil
}

// motion are the fields of an actuator call the rules read: a move to a
// target (lat/lon at speed) or a velocity command (linear m/s, negative
// backwards, for duration seconds — plugins/simbot's drive.velocity,
// plugins/ros's ros.cmd_vel).
type motion struct {
	Speed     *float64 `json:"speed"` // m/s
	Lat       *float64 `json:"lat"`
	Lon       *float64 `json:"lon"`
	Latitude  *float64 `json:"latitude"`
	Longitude *float64 `json:"longitude"`
	Linear    *float64 `json:"linear"`   // m/s
	Duration  *float64 `json:"duration"` // s
}

func (g *gate) deny(d Decision, rule, format string, args ...any) Decision {
	d.Verdict, d.Rule, d.Reason = Deny, g.key+rule, fmt.Sprintf(format, args...)
	return d
}

// decide applies the rule and the agent's motion rules to one call. Fields
// a rule needs but the call does not carry in a readable form deny it: fail
// closed.
func (g *gate) decide(a Action, d Decision, m motionRules, pose *Pose, now time.Time) Decision {
	var in motion
	if len(a.Args) > 0 {
		if err := json.Unmarshal(a.Args, &in); err != nil {
			return g.deny(d, "", "the arguments of %s cannot be read (%v), so its safety rules cannot be checked", a.Name, err)
		}
	}
	if in.Speed != nil && (!finite(*in.Speed) || *in.Speed < 0) {
		return g.deny(d, ".max_speed", "speed %v is not a valid speed in m/s", *in.Speed)
	}
	if in.Linear != nil {
		if !finite(*in.Linear) {
			return g.deny(d, ".max_speed", "linear %v is not a valid velocity in m/s", *in.Linear)
		}
		if in.Speed == nil {
			in.Speed = new(math.Abs(*in.Linear)) // backwards is as fast as forwards
		}
	}
	if g.rule.MaxSpeed > 0 {
		switch {
		case in.Speed == nil:
			return g.deny(d, ".max_speed", "%s carries no speed, so max_speed %.2f m/s cannot be checked; pass \"speed\" (or \"linear\") in m/s", a.Name, g.rule.MaxSpeed)
		case *in.Speed > g.rule.MaxSpeed:
			return g.deny(d, ".max_speed", "speed %.2f m/s is above the limit of %.2f m/s for %s", *in.Speed, g.rule.MaxSpeed, a.Name)
		}
	}
	lat, lon := cmp.Or(in.Lat, in.Latitude), cmp.Or(in.Lon, in.Longitude)
	hasTarget := lat != nil && lon != nil
	zoned := len(g.rule.KeepOut) > 0 || len(m.cfg.Geofence) > 0
	// A velocity command has no target: where it can take the robot is the
	// disc of radius |linear|·duration around its pose, whatever it steers.
	reach := 0.0
	velocity := !hasTarget && in.Linear != nil
	if velocity && zoned {
		switch {
		case in.Duration == nil || !finite(*in.Duration) || *in.Duration < 0:
			return g.deny(d, ".keep_out", "%s is a velocity command without a valid duration in seconds, so how far it goes — and its keep-out zones and geofence — cannot be checked", a.Name)
		case pose == nil:
			return g.deny(d, ".keep_out", "the robot's position is unknown (no pose reading yet), so where the velocity command %s takes it cannot be checked against its keep-out zones and geofence", a.Name)
		}
		reach = math.Abs(*in.Linear) * *in.Duration
	}
	if (lat == nil) != (lon == nil) || (!hasTarget && !velocity && zoned) {
		return g.deny(d, ".keep_out", "%s carries no target position (lat/lon), so its keep-out zones and geofence cannot be checked", a.Name)
	}
	if hasTarget {
		if !finite(*lat) || !finite(*lon) || *lat < -90 || *lat > 90 || *lon < -180 || *lon > 180 {
			return g.deny(d, ".keep_out", "target %v,%v is not a valid position (latitude -90..90, longitude -180..180)", *lat, *lon)
		}
	}
	if hasTarget || velocity && zoned || m.needsPose() {
		tlat, tlon := 0.0, 0.0
		if hasTarget {
			tlat, tlon = *lat, *lon
		} else if pose != nil {
			tlat, tlon = pose.Lat, pose.Lon // a move in place or a velocity command: the pose rules still hold
		}
		if rule, reason := checkMove(m, g.rule.KeepOut, pose, tlat, tlon, reach, now); rule != "" {
			if strings.HasPrefix(rule, "keep_out") {
				rule = "." + rule
			} else {
				d.Rule = rule
				d.Verdict, d.Reason = Deny, reason
				return d
			}
			return g.deny(d, rule, "%s", reason)
		}
	}
	if g.rate > 0 {
		g.mu.Lock()
		if !g.last.IsZero() {
			g.tokens = math.Min(g.burst, g.tokens+now.Sub(g.last).Seconds()*g.rate)
		}
		g.last = now
		if g.tokens < 1 {
			g.mu.Unlock()
			return g.deny(d, ".max_rate", "%s is limited to %s; try again later", a.Name, g.rule.MaxRate)
		}
		g.tokens--
		g.mu.Unlock()
	}
	if g.rule.Approve {
		d.Verdict, d.Rule, d.Reason = NeedsApproval, g.key+".approve", fmt.Sprintf("%s needs an operator's approval (safety.actuators approve: true)", a.Name)
	}
	return d
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// haversineM is the great-circle distance in metres.
func haversineM(lat1, lon1, lat2, lon2 float64) float64 {
	const earthRadiusM = 6371008.8
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(h)))
}
