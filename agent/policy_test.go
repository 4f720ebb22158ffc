package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
)

// robot is an in-process actuator that records what it was told to do.
type robot struct {
	mu      sync.Mutex
	moves   []string
	running atomic.Int32
	overlap atomic.Bool
}

type driveArgs struct {
	Lat   float64 `json:"lat"`
	Lon   float64 `json:"lon"`
	Speed float64 `json:"speed"`
	Label string  `json:"label,omitempty"`
}

func (r *robot) tool(t *testing.T, effect tool.Effect) tool.Tool {
	t.Helper()
	d, err := tool.New("drive.to", "Drive to a point.", effect, func(_ context.Context, in driveArgs) (map[string]bool, error) {
		if r.running.Add(1) > 1 {
			r.overlap.Store(true)
		}
		defer r.running.Add(-1)
		r.mu.Lock()
		r.moves = append(r.moves, in.Label)
		r.mu.Unlock()
		return map[string]bool{"arrived": true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (r *robot) done() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.moves...)
}

const robotFleet = `
name: rover
role: robot
model: {base_url: %q, model: m}
safety:
  actuators:
    - tool: drive.to
      max_speed: 1.5
      keep_out: [{name: dock, lat: 52.52, lon: 13.405, radius_m: 50}]
`

func openWith(t *testing.T, yaml string, opts agent.Options) (*agent.Fleet, error) {
	t.Helper()
	dir := t.TempDir()
	file, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(dir, "data")
	}
	f, err := agent.Open(t.Context(), file, opts)
	if err == nil {
		t.Cleanup(func() { f.Close(context.Background()) })
	}
	return f, err
}

// TestUnlabelledActuatorIsRefused: a tool that a safety rule names but whose
// provider does not call it an actuator is not offered at all (it used to
// run unchecked inside the keep-out zone, at any speed, after /stop).
func TestUnlabelledActuatorIsRefused(t *testing.T) {
	srv := llmtest.NewServer(t)
	r := &robot{}
	_, err := openWith(t, fmt.Sprintf(robotFleet, srv.URL), agent.Options{Tools: map[string][]tool.Tool{"rover": {r.tool(t, tool.EffectNone)}}})
	if err == nil || !strings.Contains(err.Error(), "drive.to") || !strings.Contains(err.Error(), "safety.actuators") {
		t.Fatalf("Open = %v, want a refusal naming the tool and the rule", err)
	}
}

func TestActuatorCallsPassThePolicy(t *testing.T) {
	move := func(label string, lat float64, speed float64) llm.ToolCall {
		return llm.ToolCall{ID: label, Name: "drive.to", Arguments: fmt.Sprintf(`{"lat":%v,"lon":13.405,"speed":%v,"label":%q}`, lat, speed, label)}
	}
	srv := llmtest.NewServer(t,
		// One round: two good moves around a bad one, and a read.
		llmtest.Reply{ToolCalls: []llm.ToolCall{move("first", 52.53, 1), {ID: "c", Name: "clock", Arguments: "{}"}, move("into-dock", 52.52, 1), move("second", 52.54, 1), move("too-fast", 52.55, 9)}},
		llmtest.Reply{Text: "moved"},
		llmtest.Reply{ToolCalls: []llm.ToolCall{move("after-stop", 52.53, 1)}},
		llmtest.Reply{Text: "tried"},
	)
	r := &robot{}
	f, err := openWith(t, fmt.Sprintf(robotFleet, srv.URL), agent.Options{Tools: map[string][]tool.Tool{"rover": {r.tool(t, tool.EffectActuator)}}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("rover")
	collect(t, a, "patrol")
	if got := strings.Join(r.done(), ","); got != "first,second" {
		t.Errorf("moves = %s, want first,second in the model's order (into-dock and too-fast refused)", got)
	}
	if r.overlap.Load() {
		t.Error("two actuator calls ran at once")
	}
	results := map[string]string{}
	for _, m := range srv.Requests()[1].Messages {
		if m.Role == llm.RoleTool {
			results[m.ToolCallID] = m.Content
		}
	}
	if !strings.Contains(results["into-dock"], "keep-out zone") || !strings.Contains(results["too-fast"], "above the limit") {
		t.Errorf("the model was not told why: %v", results)
	}

	collect(t, a, "/stop")
	collect(t, a, "patrol again")
	if got := r.done(); len(got) != 2 {
		t.Errorf("an actuator ran during the e-stop: %v", got)
	}
	if got := failure(t, a, `/call drive.to {"lat":52.53,"lon":13.41,"speed":1}`); got.Code != agent.CodeDenied || !strings.Contains(got.Error, "emergency stop") {
		t.Errorf("/call during the e-stop = %+v", got)
	}
	// Every decision is on record and the chain verifies.
	audit := reply(collect(t, a, "/audit 50"))
	for _, want := range []string{"keep-out zone", "above the limit", "estop.engage", "emergency stop is engaged"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, audit)
		}
	}
}

func TestEStopSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	yaml := "name: rover\nrole: robot\n"
	for i := range 2 {
		f, err := openWith(t, yaml, agent.Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := f.Agent("rover")
		if i == 0 {
			collect(t, a, "/stop")
		} else if st := reply(collect(t, a, "/status")); !strings.Contains(st, "emergency stop: ENGAGED") {
			t.Errorf("after a restart /status says:\n%s", st)
		}
		if err := f.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOperatorRoles(t *testing.T) {
	f, err := openWith(t, "name: rover\noperators: [ada]\n", agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("rover")
	as := func(name string, role policy.Role, text string) agent.Event {
		evs := events(t, a, agent.Input{From: name, Role: role, Text: text})
		return evs[len(evs)-1]
	}
	for _, tt := range []struct {
		who  string
		role policy.Role
		text string
		ok   bool
	}{
		{"vi", policy.RoleViewer, "/status", true},
		{"vi", policy.RoleViewer, "/call clock {}", false},
		{"ada", policy.RoleOperator, "/call clock {}", true},
		{"eve", policy.RoleOperator, "/call clock {}", false}, // not one of the agent's operators
		{"vi", policy.RoleViewer, "/stop", true},              // anyone may stop
		{"ada", policy.RoleOperator, "/resume", false},        // only an admin releases
		{"root", policy.RoleAdmin, "/resume", true},
	} {
		ev := as(tt.who, tt.role, tt.text)
		if (ev.Type == agent.EventReply) != tt.ok {
			t.Errorf("%s (%s) %s → %+v, want allowed=%v", tt.who, tt.role, tt.text, ev, tt.ok)
		}
	}
}

// TestWakeLoopEndsAtTheDepthLimit: two agents that wake on each other's
// observations used to loop forever, one model call a hop.
func TestWakeLoopEndsAtTheDepthLimit(t *testing.T) {
	note := func(text string) llmtest.Reply {
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{Name: "memory.put", Arguments: fmt.Sprintf(`{"text":%q,"namespace":"fleet"}`, text)}}}
	}
	// One scripted endpoint per agent: each turn writes a note, then answers.
	servers := map[string]*llmtest.Server{}
	for _, name := range []string{"alpha", "beta"} {
		var replies []llmtest.Reply
		for i := range 10 {
			replies = append(replies, note(fmt.Sprintf("%s ping %d", name, i)), llmtest.Reply{Text: "noted"})
		}
		servers[name] = llmtest.NewServer(t, replies...)
	}
	agentYAML := `
  - name: %s
    model: {base_url: %q, model: m}
    memory: {read: [fleet, agent/%[1]s], write: [fleet, agent/%[1]s]}
    limits: {depth: 2}
    wake: [{namespace: fleet, kinds: [observation]}]`
	f, err := openWith(t, "agents:"+fmt.Sprintf(agentYAML, "alpha", servers["alpha"].URL)+fmt.Sprintf(agentYAML, "beta", servers["beta"].URL)+"\n", agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alpha, _ := f.Agent("alpha")
	beta, _ := f.Agent("beta")
	collect(t, alpha, "say ping to beta") // depth 0 writes; beta wakes at 1, alpha at 2, beta at 3 is refused
	waitFor(t, func() bool { return alpha.Status().Turns+beta.Status().Turns >= 3 })
	waitFor(t, func() bool { return strings.Contains(reply(collect(t, alpha, "/audit 100")), "past the limit of 2") })
	turnsThen := alpha.Status().Turns + beta.Status().Turns
	if turnsThen != 3 {
		t.Errorf("%d turns, want 3 (the operator's, then one wake each)", turnsThen)
	}
	if n := len(servers["alpha"].Requests()) + len(servers["beta"].Requests()); n != 6 {
		t.Errorf("%d model calls, want 6", n)
	}
}

// TestTurnsAcrossRestarts: the no-model answer is not a turn; turn counts
// and /reset survive a restart.
func TestTurnsAcrossRestarts(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.Reply{Text: "one"}, llmtest.Reply{Text: "two"}, llmtest.Reply{Text: "three"})
	dir := t.TempDir()
	yaml := fmt.Sprintf("name: scout\nmodel: {base_url: %q, model: m}\n", srv.URL)
	run := func(do func(a *agent.Agent)) {
		f, err := openWith(t, yaml, agent.Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := f.Agent("scout")
		do(a)
		if err := f.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	run(func(a *agent.Agent) { collect(t, a, "first"); collect(t, a, "second") })
	run(func(a *agent.Agent) {
		if n := a.Status().Turns; n != 2 {
			t.Errorf("turns after a restart = %d, want 2", n)
		}
		collect(t, a, "/reset")
	})
	run(func(a *agent.Agent) {
		collect(t, a, "third")
		for _, m := range srv.Requests()[2].Messages {
			if m.Role == llm.RoleAssistant {
				t.Errorf("a turn from before /reset was sent: %+v", m)
			}
		}
	})

	noModel, err := openWith(t, "name: desk\n", agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	desk, _ := noModel.Agent("desk")
	collect(t, desk, "hello?")
	recs := reply(collect(t, desk, "/memory recent 10"))
	if strings.Contains(recs, " turn ") || desk.Status().Turns != 0 {
		t.Errorf("the no-model answer was stored as a turn:\n%s", recs)
	}
}

// TestMotionDecidedOnTheRobotsPose: the path from where the robot is, not
// just the target, is checked against keep-out zones; a stale pose stops
// motion; /status shows the robot.
func TestMotionDecidedOnTheRobotsPose(t *testing.T) {
	srv := llmtest.NewServer(t)
	r := &robot{}
	f, err := openWith(t, fmt.Sprintf(robotFleet+"  motion: {max_pose_age: 300ms, min_fix: rtk_float}\n", srv.URL), agent.Options{Tools: map[string][]tool.Tool{"rover": {r.tool(t, tool.EffectActuator)}}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("rover")
	through := `/call drive.to {"lat":52.523,"lon":13.405,"speed":1,"label":"through"}`
	if got := failure(t, a, through); !strings.Contains(got.Error, "position is unknown") {
		t.Fatalf("a move with no pose: %+v", got)
	}
	pose := json.RawMessage(`{"lat":52.5173,"lon":13.405,"heading_deg":0,"speed_mps":0,"fix":"rtk_fixed","battery_pct":90}`)
	if err := a.Report(t.Context(), "gnss", "position", pose); err != nil {
		t.Fatal(err)
	}
	if got := failure(t, a, through); !strings.Contains(got.Error, "straight path") || !strings.Contains(got.Error, `"dock"`) {
		t.Errorf("a path through the zone: %+v", got)
	}
	if got := reply(collect(t, a, `/call drive.to {"lat":52.5175,"lon":13.408,"speed":1,"label":"around"}`)); !strings.Contains(got, "arrived") {
		t.Errorf("a clear move: %q", got)
	}
	if st := reply(collect(t, a, "/status")); !strings.Contains(st, "52.517300,13.405000") || !strings.Contains(st, "fix rtk_fixed") {
		t.Errorf("/status does not show the robot:\n%s", st)
	}
	waitFor(t, func() bool { return a.Status().Robot.Stale })
	if got := failure(t, a, `/call drive.to {"lat":52.5175,"lon":13.408,"speed":1}`); !strings.Contains(got.Error, "stale pose") {
		t.Errorf("a move on a stale pose: %+v", got)
	}
	if got := r.done(); len(got) != 1 || got[0] != "around" {
		t.Errorf("moves = %v, want only the clear one", got)
	}
}

// TestLostFixForgetsThePose: a GNSS reading without a fix (plugins/gnss's
// shape) or a receiver_lost event leaves no position standing as current.
func TestLostFixForgetsThePose(t *testing.T) {
	f, err := openWith(t, "name: rover\nrole: robot\n", agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("rover")
	fix := json.RawMessage(`{"quality":"rtk_fixed","lat":52.5,"lon":13.4,"heading":90,"speed":1.2,"satellites":14}`)
	if err := a.Report(t.Context(), "gnss", "gnss.fix", fix); err != nil {
		t.Fatal(err)
	}
	if r := a.Status().Robot; r == nil || r.Fix != "rtk_fixed" || r.HeadingDeg != 90 || r.SpeedMPS != 1.2 {
		t.Fatalf("robot = %+v", r)
	}
	for _, lost := range []string{`{"quality":"none","satellites":2}`, `{"event":"receiver_lost"}`} {
		if err := a.Report(t.Context(), "gnss", "gnss.fix", fix); err != nil {
			t.Fatal(err)
		}
		if err := a.Report(t.Context(), "gnss", "gnss.fix", json.RawMessage(lost)); err != nil {
			t.Fatal(err)
		}
		if r := a.Status().Robot; r != nil {
			t.Errorf("after %s the robot still has a pose: %+v", lost, r)
		}
	}
}
