package operator_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkROSBridgeServiceCall: one call_service of a robot's tool over the
// WebSocket to its response — the operator's /call with its policy
// decision and audit record (a read-only tool: clock).
func BenchmarkROSBridgeServiceCall(b *testing.B) {
	srv, _, _ := bridgeServer(b)
	c := dialBridge(b, srv, "token-ann")
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprint(i)
		c.send(`{"op":"call_service","service":"/rover/clock","id":"` + id + `"}`)
		c.response(id)
	}
}

// BenchmarkROSBridgeCmdVel: one cmd_vel over the WebSocket until the robot's
// velocity tool has it — the actuator decision on the robot's pose, the
// audit records and the tool call.
func BenchmarkROSBridgeCmdVel(b *testing.B) {
	srv, a, m := bridgeServer(b)
	c := dialBridge(b, srv, "token-ann")
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer() // a fresh pose, as a moving robot reports (max_pose_age 5s)
		if err := a.Report(b.Context(), "gnss", "fix", json.RawMessage(`{"lat":52.5,"lon":13.4,"fix":"rtk_fixed"}`)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c.send(pub(fmt.Sprint(i), 0.5, 0))
		select {
		case <-m.moved:
		case <-time.After(10 * time.Second):
			b.Fatalf("cmd_vel %d did not reach the motors", i)
		}
	}
}
