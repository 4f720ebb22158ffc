package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/tool"
)

// wheels is an in-process actuator that keeps moving once told to, until
// its stop handler brings it to rest: what a robot's own Go program drives.
type wheels struct {
	mu      sync.Mutex
	speed   float64
	odo     float64
	stops   int
	failing error         // Stop answers this
	hang    chan struct{} // Stop blocks until closed (or ctx ends)
	quit    chan struct{}
}

type velocityArgs struct {
	Speed float64 `json:"speed"`
}

func (w *wheels) Spec() tool.Spec {
	return tool.Spec{Name: "wheels.velocity", Description: "Drive at speed m/s until stopped.", Effect: tool.EffectActuator,
		InputSchema: []byte(`{"type":"object","properties":{"speed":{"type":"number"}},"required":["speed"]}`)}
}

func (w *wheels) Call(_ context.Context, args json.RawMessage) (json.RawMessage, error) {
	var in velocityArgs
	if err := json.Unmarshal(args, &in); err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.speed = in.Speed
	w.mu.Unlock()
	return json.RawMessage(`{"ok":true}`), nil
}

// run integrates the odometer every millisecond: the machine moves on by
// itself, whatever the agent does, until its speed is 0.
func (w *wheels) run() {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-t.C:
			w.mu.Lock()
			w.odo += w.speed / 1000
			w.mu.Unlock()
		}
	}
}

func (w *wheels) Stop(ctx context.Context) error {
	w.mu.Lock()
	w.stops++
	err, hang := w.failing, w.hang
	if err == nil && hang == nil {
		w.speed = 0
	}
	w.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
		}
		return ctx.Err()
	}
	return err
}

func (w *wheels) state() (speed, odo float64, stops int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.speed, w.odo, w.stops
}

func newWheels(t *testing.T) *wheels {
	w := &wheels{quit: make(chan struct{})}
	go w.run()
	t.Cleanup(func() { close(w.quit) })
	return w
}

const wheelsFleet = `
name: rover
role: robot
safety:
  actuators:
    - tool: wheels.velocity
`

// TestEStopReachesInProcessActuator: /stop used to refuse new calls only; an
// in-process actuator told to drive kept driving. Now its stop handler runs
// with the plugins', and the machine comes to rest; the answer is audited.
func TestEStopReachesInProcessActuator(t *testing.T) {
	w := newWheels(t)
	f, err := openWith(t, wheelsFleet, agent.Options{Tools: map[string][]tool.Tool{"rover": {w}}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("rover")
	collect(t, a, `/call wheels.velocity {"speed":2}`)
	_, odo0, _ := w.state()
	time.Sleep(20 * time.Millisecond)
	if _, odo, _ := w.state(); odo <= odo0 {
		t.Fatalf("the wheels did not move (odometer %v → %v)", odo0, odo)
	}
	collect(t, a, "/stop")
	speed, odo1, stops := w.state()
	if speed != 0 || stops != 1 {
		t.Fatalf("after /stop: speed %v, stop handler ran %d times; want 0 and 1", speed, stops)
	}
	time.Sleep(20 * time.Millisecond)
	if _, odo, _ := w.state(); odo != odo1 {
		t.Errorf("the wheels moved on after the stop (odometer %v → %v)", odo1, odo)
	}
	audit := reply(collect(t, a, "/audit 10"))
	if !strings.Contains(audit, "actuator.stop") || !strings.Contains(audit, "tool:wheels.velocity") || !strings.Contains(audit, "acknowledged=true") {
		t.Errorf("the stop's answer is not on record:\n%s", audit)
	}
	if _, ok := a.Tools().Get("wheels.velocity"); !ok {
		t.Error("an actuator that acknowledged its stop was dropped")
	}
}

// TestInProcessStopFailureDropsTheTool: a stop handler that fails or hangs
// is on record, the stop does not wait past its deadline, and the tool
// leaves the agent, so that nothing drives a machine that may be moving.
func TestInProcessStopFailureDropsTheTool(t *testing.T) {
	for name, w := range map[string]*wheels{
		"fails": {failing: errors.New("motor controller not answering")},
		"hangs": {hang: make(chan struct{})},
	} {
		t.Run(name, func(t *testing.T) {
			w.quit = make(chan struct{})
			go w.run()
			t.Cleanup(func() { close(w.quit) })
			f, err := openWith(t, wheelsFleet, agent.Options{Tools: map[string][]tool.Tool{"rover": {w}}})
			if err != nil {
				t.Fatal(err)
			}
			a, _ := f.Agent("rover")
			start := time.Now()
			collect(t, a, "/stop")
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("/stop took %v: a hanging handler held it", took)
			}
			if _, ok := a.Tools().Get("wheels.velocity"); ok {
				t.Error("the tool whose stop failed is still offered")
			}
			audit := reply(collect(t, a, "/audit 10"))
			if !strings.Contains(audit, "acknowledged=false") || !strings.Contains(audit, "removed from the agent's tools") {
				t.Errorf("the failed stop is not on record:\n%s", audit)
			}
			if w.hang != nil {
				close(w.hang)
			}
		})
	}
}

// TestCloseStopsInProcessActuators: shutting the fleet down stops the
// machine, as it stops plugins' actuators.
func TestCloseStopsInProcessActuators(t *testing.T) {
	w := newWheels(t)
	f, err := openWith(t, wheelsFleet, agent.Options{Tools: map[string][]tool.Tool{"rover": {w}}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("rover")
	collect(t, a, `/call wheels.velocity {"speed":1}`)
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if speed, _, stops := w.state(); speed != 0 || stops != 1 {
		t.Errorf("after Close: speed %v, stops %d; want 0 and 1", speed, stops)
	}
}

// TestEStopQuarantinesUnacknowledgingPlugin: an actuator plugin that does
// not answer the emergency stop is quarantined, and its tools leave the
// agent (the host's OnQuarantine, as for a crash loop): nothing drives a
// machine that may still be moving.
func TestEStopQuarantinesUnacknowledgingPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "host", "process", "testdata", "stopplugin")
	f, _ := openFleet(t, fmt.Sprintf(`
name: rover
role: robot
safety:
  actuators:
    - tool: motor.move
plugins:
  - name: motor
    path: %q
    transport: process
    grants: {actuator: true}
`, src))
	if err := f.WaitPlugins(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("rover")
	if _, ok := a.Tools().Get("motor.move"); !ok {
		t.Fatal("the plugin's tools are not offered")
	}
	collect(t, a, `/call motor.ignore {"on":true}`)
	collect(t, a, "/stop")
	for _, name := range []string{"motor.move", "motor.state"} {
		if _, ok := a.Tools().Get(name); ok {
			t.Errorf("%s is still offered after its plugin ignored the stop", name)
		}
	}
	if got := reply(collect(t, a, "/plugins")); !strings.Contains(got, "quarantined") {
		t.Errorf("/plugins does not list motor as quarantined:\n%s", got)
	}
	audit := reply(collect(t, a, "/audit 20"))
	if !strings.Contains(audit, "acknowledged=false") || !strings.Contains(audit, "quarantined: unloaded until cleared") || !strings.Contains(audit, "plugin.quarantine") {
		t.Errorf("the unacknowledged stop and the quarantine are not on record:\n%s", audit)
	}
}
