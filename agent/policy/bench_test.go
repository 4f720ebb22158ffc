package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/policy"
)

// BenchmarkDecideMove is the policy's cost for one actuator call: the
// rule, the path from the pose against two keep-out zones (a circle and a
// polygon), the geofence and the pose rules. Decide alone; Authorize adds
// the audit write.
func BenchmarkDecideMove(b *testing.B) {
	here := policy.Pose{Lat: 52.5173, Lon: 13.405, Fix: policy.FixRTKFixed, BatteryPct: pct(80), Time: time.Now().Add(time.Hour)}
	rules := policy.Rules{
		Actuators: []config.ActuatorRule{{Tool: "drive.to", MaxSpeed: 2, KeepOut: []config.Zone{
			{Name: "pond", Lat: 52.52, Lon: 13.405, RadiusM: 50},
			{Name: "shed", Polygon: [][]float64{{52.5185, 13.4060}, {52.5185, 13.4070}, {52.5195, 13.4070}, {52.5195, 13.4060}}},
		}}},
		Motion: config.Motion{MinFix: "rtk_float", BatteryReserve: 20, MaxPoseAge: config.Duration(2 * time.Hour),
			Geofence: [][]float64{{52.515, 13.400}, {52.515, 13.410}, {52.525, 13.410}, {52.525, 13.400}}},
	}
	state, err := policy.OpenState(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	e, err := policy.New(context.Background(), policy.Config{
		Log: openLog(b, openStore(b)), State: state, Agents: map[string]policy.Rules{"rover-1": rules},
		Poses: func(string) (policy.Pose, bool) { return here, true },
	})
	if err != nil {
		b.Fatal(err)
	}
	move := to(52.5175, 13.4080)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(ctx, move); d.Verdict != policy.Allow {
			b.Fatal(d.Reason)
		}
	}
}
