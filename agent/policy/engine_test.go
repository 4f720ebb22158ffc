package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

type fixture struct {
	db     *memory.DB
	dir    string
	engine *policy.Engine
}

var driveRule = config.ActuatorRule{
	Tool: "drive.to", MaxSpeed: 1.5, MaxRate: "100/s",
	KeepOut: []config.Zone{{Name: "dock", Lat: 52.52, Lon: 13.405, RadiusM: 50}},
}

func newEngine(t *testing.T, dir string, db *memory.DB, rules policy.Rules, timeout time.Duration) *policy.Engine {
	t.Helper()
	state, err := policy.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(context.Background(), policy.Config{
		Log: openLog(t, db), State: state, ApprovalTimeout: timeout,
		Agents: map[string]policy.Rules{"rover-1": rules},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newFixture(t *testing.T, rules policy.Rules) *fixture {
	f := &fixture{db: openStore(t), dir: t.TempDir()}
	f.engine = newEngine(t, f.dir, f.db, rules, time.Minute)
	return f
}

var (
	model    = policy.Principal{Kind: policy.PrincipalModel}
	admin    = policy.Principal{Kind: policy.PrincipalOperator, ID: "ada", Role: policy.RoleAdmin}
	operator = policy.Principal{Kind: policy.PrincipalOperator, ID: "op", Role: policy.RoleOperator}
	viewer   = policy.Principal{Kind: policy.PrincipalOperator, ID: "vi", Role: policy.RoleViewer}
)

func drive(args string, effect wire.Effect) policy.Action {
	return policy.Action{Agent: "rover-1", Principal: model, Kind: policy.ActionTool, Name: "drive.to", Effect: effect, Args: json.RawMessage(args)}
}

// auditEntries returns the chain's entries in order.
func auditEntries(t *testing.T, db memory.Store) []policy.Entry {
	t.Helper()
	var out []policy.Entry
	for r, err := range db.Query(context.Background(), memory.Query{Namespace: policy.AuditNamespace, Ascending: true}) {
		if err != nil {
			t.Fatal(err)
		}
		var e policy.Entry
		if err := json.Unmarshal(r.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestActuatorRules(t *testing.T) {
	f := newFixture(t, policy.Rules{Actuators: []config.ActuatorRule{driveRule}})
	tests := []struct {
		name   string
		action policy.Action
		want   string // "" allows; otherwise a part of the denial
	}{
		{"allowed move", drive(`{"lat":52.53,"lon":13.41,"speed":1}`, wire.EffectActuator), ""},
		// The rule, not the manifest, decides what drive.to is.
		{"an unlabelled actuator into the zone", drive(`{"lat":52.52,"lon":13.405,"speed":1}`, wire.EffectNone), "inside keep-out zone \"dock\""},
		{"an unlabelled actuator too fast", drive(`{"lat":52.53,"lon":13.41,"speed":9}`, wire.EffectNone), "above the limit of 1.50"},
		{"no target", drive(`{"speed":1}`, wire.EffectActuator), "carries no target position"},
		{"no speed", drive(`{"lat":52.53,"lon":13.41}`, wire.EffectActuator), "carries no speed"},
		{"unreadable arguments", drive(`{"lat":"north","lon":13.41,"speed":1}`, wire.EffectActuator), "cannot be read"},
		{"out of range", drive(`{"lat":152,"lon":13.41,"speed":1}`, wire.EffectActuator), "not a valid position"},
		{"a viewer may not move it", policy.Action{Agent: "rover-1", Principal: viewer, Kind: policy.ActionTool, Name: "drive.to", Args: json.RawMessage(`{"lat":52.53,"lon":13.41,"speed":1}`)}, "may only read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done, err := f.engine.Authorize(context.Background(), tt.action)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				done(json.RawMessage(`{"ok":true}`), nil)
				return
			}
			var we *wire.Error
			if !errors.As(err, &we) || (we.Code != wire.CodeDenied && we.Code != wire.CodeForbidden) || !strings.Contains(we.Message, tt.want) {
				t.Fatalf("got %v, want a denial saying %q", err, tt.want)
			}
		})
	}
	// Every decision is on record, with what it was decided on.
	entries := auditEntries(t, f.db)
	if len(entries) != 1+1+len(tests)-1 {
		t.Fatalf("%d audit entries, want %d: %+v", len(entries), len(tests)+1, entries)
	}
	if e := entries[0]; e.Phase != policy.PhaseDecision || e.Decision != policy.Allow || string(e.Args) == "" {
		t.Errorf("first entry %+v", e)
	}
	if e := entries[1]; e.Phase != policy.PhaseOutcome || e.Ref != entries[0].N {
		t.Errorf("outcome entry %+v", e)
	}
	if e := entries[2]; e.Decision != policy.Deny || !strings.HasPrefix(e.Rule, "safety.actuators[drive.to].keep_out") {
		t.Errorf("denial entry %+v", e)
	}
}

func TestCheckToolRefusesAnUnlabelledActuator(t *testing.T) {
	f := newFixture(t, policy.Rules{Actuators: []config.ActuatorRule{driveRule}})
	err := f.engine.CheckTool("rover-1", "sneaky", "drive.to", wire.EffectNone)
	if err == nil || !strings.Contains(err.Error(), "drive.to of sneaky") || !strings.Contains(err.Error(), "safety.actuators") {
		t.Fatalf("got %v", err)
	}
	if err := f.engine.CheckTool("rover-1", "honest", "drive.to", wire.EffectActuator); err != nil {
		t.Fatal(err)
	}
}

func TestEStopLocksAndSurvivesRestart(t *testing.T) {
	f := newFixture(t, policy.Rules{Actuators: []config.ActuatorRule{driveRule}})
	stopped := 0
	f.engine.OnStop(func(context.Context) { stopped++ })
	if err := f.engine.Stop(context.Background(), viewer, "operator pressed stop"); err != nil {
		t.Fatal(err)
	}
	if stopped != 1 || !f.engine.Stopped() {
		t.Fatalf("hooks ran %d times, stopped=%v", stopped, f.engine.Stopped())
	}
	for _, eff := range []wire.Effect{wire.EffectNone, wire.EffectActuator} {
		if _, err := f.engine.Authorize(context.Background(), drive(`{"lat":52.53,"lon":13.41,"speed":1}`, eff)); err == nil || !strings.Contains(err.Error(), "emergency stop") {
			t.Fatalf("effect %q: got %v, want an e-stop denial", eff, err)
		}
	}
	// A restart — here a new engine over the same state dir — is still stopped.
	again := newEngine(t, f.dir, f.db, policy.Rules{}, time.Minute)
	if !again.Stopped() {
		t.Fatal("the e-stop was released by a restart")
	}
	if err := again.Resume(context.Background(), operator); err == nil {
		t.Fatal("an operator (not admin) released the e-stop")
	}
	if err := again.Resume(context.Background(), admin); err != nil || again.Stopped() {
		t.Fatalf("admin resume: %v, stopped=%v", err, again.Stopped())
	}
	if rep, _ := policy.Verify(context.Background(), f.db); !rep.OK() {
		t.Fatal(rep)
	}
}

func TestUnreadableStateStartsStopped(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, policy.StateFile), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, dir, openStore(t), policy.Rules{}, time.Minute)
	if !e.Stopped() || !strings.Contains(e.EStop().Reason, "could not be read") {
		t.Fatalf("estop = %+v", e.EStop())
	}
}

func TestApprovals(t *testing.T) {
	rule := driveRule
	rule.Approve = true
	f := newFixture(t, policy.Rules{Actuators: []config.ActuatorRule{rule}})
	move := drive(`{"lat":52.53,"lon":13.41,"speed":1}`, wire.EffectActuator)
	result := make(chan error, 1)
	go func() {
		_, err := f.engine.Authorize(context.Background(), move)
		result <- err
	}()
	pending := waitApprovals(t, f.engine, 1)
	if err := f.engine.Approve(context.Background(), pending[0].ID, viewer); err == nil {
		t.Fatal("a viewer approved")
	}
	if err := f.engine.Approve(context.Background(), pending[0].ID, operator); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatalf("approved action refused: %v", err)
	}
	go func() {
		_, err := f.engine.Authorize(context.Background(), move)
		result <- err
	}()
	pending = waitApprovals(t, f.engine, 1)
	if err := f.engine.DenyApproval(context.Background(), pending[0].ID, operator, "not now"); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err == nil || !strings.Contains(err.Error(), "not now") {
		t.Fatalf("denied action: %v", err)
	}

	// Timeout → denied; and a pending approval does not outlive a restart.
	short := newEngine(t, t.TempDir(), f.db, policy.Rules{Actuators: []config.ActuatorRule{rule}}, 50*time.Millisecond)
	if _, err := short.Authorize(context.Background(), move); err == nil || !strings.Contains(err.Error(), "nobody approved") {
		t.Fatalf("timed-out approval: %v", err)
	}
	dir := t.TempDir()
	parked := newEngine(t, dir, f.db, policy.Rules{Actuators: []config.ActuatorRule{rule}}, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, err := parked.Authorize(ctx, move); result <- err }()
	waitApprovals(t, parked, 1)
	restarted := newEngine(t, dir, f.db, policy.Rules{Actuators: []config.ActuatorRule{rule}}, time.Minute)
	if n := len(restarted.Approvals()); n != 0 {
		t.Fatalf("%d approvals survived a restart as pending", n)
	}
	cancel()
	<-result
}

func waitApprovals(t *testing.T, e *policy.Engine, n int) []policy.Approval {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ps := e.Approvals(); len(ps) == n {
			return ps
		}
	}
	t.Fatalf("no %d pending approvals", n)
	return nil
}

func TestCommandsAndDepth(t *testing.T) {
	f := newFixture(t, policy.Rules{Operators: []string{"op"}, MaxDepth: 2})
	cmd := func(p policy.Principal, name string) error {
		_, err := f.engine.Authorize(context.Background(), policy.Action{Agent: "rover-1", Principal: p, Kind: policy.ActionCommand, Name: name})
		return err
	}
	other := policy.Principal{Kind: policy.PrincipalOperator, ID: "eve", Role: policy.RoleOperator}
	plugin := policy.Principal{Kind: policy.PrincipalPlugin, ID: "chaos"}
	for _, tt := range []struct {
		p    policy.Principal
		name string
		ok   bool
	}{
		{viewer, "status", true}, {viewer, "stop", true}, {viewer, "call", false}, {viewer, "resume", false},
		{operator, "call", true}, {operator, "resume", false}, {admin, "resume", true},
		{other, "call", false}, {other, "status", true}, {plugin, "stop", false},
		{admin, "no-such-command", true}, {operator, "no-such-command", false},
	} {
		if err := cmd(tt.p, tt.name); (err == nil) != tt.ok {
			t.Errorf("%s /%s: err=%v, want allowed=%v", tt.p, tt.name, err, tt.ok)
		}
	}
	msg := func(depth int) error {
		_, err := f.engine.Authorize(context.Background(), policy.Action{Agent: "rover-1", Principal: policy.Principal{Kind: policy.PrincipalAgent, ID: "dispatcher"}, Kind: policy.ActionMessage, Depth: depth})
		return err
	}
	if err := msg(2); err != nil {
		t.Fatal(err)
	}
	if err := msg(3); err == nil || !strings.Contains(err.Error(), "limit of 2") {
		t.Fatalf("depth 3: %v", err)
	}
}

func TestDenialsAreCoalesced(t *testing.T) {
	f := newFixture(t, policy.Rules{})
	pay := policy.Action{Agent: "rover-1", Principal: policy.Principal{Kind: policy.PrincipalPlugin, ID: "chaos"}, Kind: policy.ActionHost, Name: "pay.execute", Effect: wire.EffectPayment}
	for range 1000 {
		if _, err := f.engine.Authorize(context.Background(), pay); err == nil {
			t.Fatal("a payment was allowed with no spend policy")
		}
	}
	if n := len(auditEntries(t, f.db)); n != 1 {
		t.Fatalf("%d audit records for 1000 denials in a burst, want 1", n)
	}
}

// TestAgentCalls: with safety.agent_calls, another agent calls only the
// tools listed for it (or for "*"), and each refusal is on record; without
// it, any tool passes to the rest of the rules.
func TestAgentCalls(t *testing.T) {
	call := func(from, tool string) policy.Action {
		return policy.Action{Agent: "rover-1", Principal: policy.Principal{Kind: policy.PrincipalAgent, ID: from}, Kind: policy.ActionTool, Name: tool, Effect: wire.EffectWrite, Args: json.RawMessage(`{}`)}
	}
	restricted := policy.Rules{AgentCalls: []config.AgentCall{
		{From: "dispatcher", Tools: []string{"drive.to", "robot.*"}},
		{From: "*", Tools: []string{"robot.pose"}},
	}}
	for _, tt := range []struct {
		rules      policy.Rules
		from, tool string
		allowed    bool
	}{
		{restricted, "dispatcher", "drive.to", true},
		{restricted, "dispatcher", "robot.stop", true},
		{restricted, "dispatcher", "sim.set_fix", false},
		{restricted, "planner", "robot.pose", true},
		{restricted, "planner", "drive.to", false},
		{policy.Rules{}, "planner", "sim.set_fix", true},
	} {
		e := motionEngine(t, tt.rules, nil)
		_, err := e.Authorize(context.Background(), call(tt.from, tt.tool))
		if tt.allowed != (err == nil) {
			t.Errorf("%s → %s under %+v: %v, want allowed %v", tt.from, tt.tool, tt.rules.AgentCalls, err, tt.allowed)
		}
		if err != nil && (!strings.Contains(err.Error(), "safety.agent_calls") || !strings.Contains(err.Error(), tt.from)) {
			t.Errorf("refusal %q does not name the rule and the agent", err)
		}
	}
	// An operator's call is not another agent's: the list does not apply.
	e := motionEngine(t, restricted, nil)
	a := call("", "sim.set_fix")
	a.Principal = operator
	if _, err := e.Authorize(context.Background(), a); err != nil {
		t.Errorf("operator's call refused: %v", err)
	}
}
