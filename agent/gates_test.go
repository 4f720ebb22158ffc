package agent_test

import (
	"context"
	"strings"
	"testing"

	"github.com/depai/depai/agent/tool"
)

type driveArgs struct {
	Lat   float64 `json:"lat"`
	Lon   float64 `json:"lon"`
	Speed float64 `json:"speed"`
}

type driveResult struct {
	Moving bool `json:"moving"`
}

// TestActuatorGates: actuator calls pass the configured gates before the
// tool runs, and the emergency stop blocks them all.
func TestActuatorGates(t *testing.T) {
	f, _ := openFleet(t, `
name: rover
role: robot
safety:
  actuators:
    - tool: drive.to
      max_rate: 2/h
      max_speed: 1.5
      keep_out:
        - {name: loading dock, lat: 52.52, lon: 13.405, radius_m: 50}
`)
	a, _ := f.Agent("rover")
	var ran int
	drive, err := tool.New("drive.to", "Drive to a point.", tool.EffectActuator, func(_ context.Context, in driveArgs) (driveResult, error) {
		ran++
		return driveResult{Moving: true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Tools().Add(drive); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{`/call drive.to {"lat":52.5201,"lon":13.4051,"speed":1}`, "inside keep-out zone \"loading dock\""},
		{`/call drive.to {"lat":52.53,"lon":13.41,"speed":3}`, "above the limit of 1.50 m/s"},
		{`/call drive.to {"lat":52.53,"lon":13.41,"speed":1}`, `"moving": true`},
		{"/stop", "EMERGENCY STOP"},
		{`/call drive.to {"lat":52.53,"lon":13.41,"speed":1}`, "emergency stop is engaged"},
		{"/resume", "released"},
		{`/call drive.to {"lat":52.53,"lon":13.41,"speed":1}`, `"moving": true`},
		{`/call drive.to {"lat":52.53,"lon":13.41,"speed":1}`, "limited to 2/h"},
		{"/memory recent 20", "tool.denied drive.to"},
	} {
		if got := reply(collect(t, a, tc.in)); !strings.Contains(got, tc.want) {
			t.Errorf("%s → %q, want %q", tc.in, got, tc.want)
		}
	}
	if ran != 2 {
		t.Errorf("the tool ran %d times, want 2: a denied call must never reach it", ran)
	}
}
