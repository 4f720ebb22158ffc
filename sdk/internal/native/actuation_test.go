package native

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// stopRecorder is a registry whose stop handler records its reasons.
func stopRecorder(t *testing.T, watchdog time.Duration) (*registry.Registry, func() []string) {
	t.Helper()
	reg := registry.New()
	reg.SetInfo("bot", "0")
	reg.AddTool(wire.ToolDef{Name: "drive", Effect: wire.EffectActuator}, func(context.Context, json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`{}`), nil
	})
	var mu sync.Mutex
	var reasons []string
	reg.SetStop(func(_ context.Context, payload json.RawMessage) (json.RawMessage, error) {
		var a wire.StopArgs
		_ = json.Unmarshal(payload, &a)
		mu.Lock()
		reasons = append(reasons, a.Reason)
		mu.Unlock()
		return json.RawMessage(`{}`), nil
	})
	if watchdog > 0 {
		reg.SetWatchdog(watchdog)
	}
	return reg, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), reasons...)
	}
}

// TestWatchdogTripsRefusesAndResumes: without heartbeats the watchdog calls
// the stop handler once and refuses actuator calls; a heartbeat re-arms it.
func TestWatchdogTripsRefusesAndResumes(t *testing.T) {
	// Beats every 20ms against a 250ms timeout: a loaded machine's late
	// wake-ups must not look like missing heartbeats.
	const timeout = 250 * time.Millisecond
	reg, reasons := stopRecorder(t, timeout)
	a := newActuation(reg, reg.Manifest(), "bot")
	a.start()
	drive := wire.Call{Method: "drive"}
	beat := wire.Call{Method: wire.MethodHeartbeat}
	// Beats keep it quiet well past the timeout.
	for range 40 {
		if res, ok := a.intercept(beat); !ok || res.Error != nil {
			t.Fatalf("heartbeat: %v %+v", ok, res)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := reasons(); len(got) != 0 {
		t.Fatalf("stops while heartbeats arrived: %q", got)
	}
	if _, ok := a.intercept(drive); ok {
		t.Fatal("drive intercepted while heartbeats arrive")
	}
	time.Sleep(3 * timeout)
	if got := reasons(); len(got) != 1 || got[0] != wire.StopWatchdog {
		t.Fatalf("stops after a missed heartbeat: %q, want one %q", got, wire.StopWatchdog)
	}
	res, ok := a.intercept(drive)
	if !ok || res.Error == nil || res.Error.Code != wire.CodeUnavailable {
		t.Fatalf("drive while tripped: %v %+v, want refused as unavailable", ok, res)
	}
	a.intercept(beat)
	if _, ok := a.intercept(drive); ok {
		t.Fatal("drive still refused after heartbeats resumed")
	}
}

// TestHostGoneStopsThenExits: losing the host runs the stop handler with
// reason host_lost, then exits.
func TestHostGoneStopsThenExits(t *testing.T) {
	reg, reasons := stopRecorder(t, 0)
	a := newActuation(reg, reg.Manifest(), "bot")
	exited := make(chan int, 1)
	a.exit = func(code int) {
		if got := reasons(); len(got) != 1 || got[0] != wire.StopHostLost {
			t.Errorf("stops before exit: %q, want one %q", got, wire.StopHostLost)
		}
		exited <- code
	}
	a.hostGone("test")
	if code := <-exited; code != 0 {
		t.Errorf("exit code %d", code)
	}
}
