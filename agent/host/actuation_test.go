package host_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/sdk/wire"
)

// TestWASMActuatorStop: a WASM plugin's stop handler is reached by StopAll
// and by Close, each with its reason.
func TestWASMActuatorStop(t *testing.T) {
	ctx := context.Background()
	h := wasmtest.NewHost(t, host.Config{})
	p, err := h.Load(ctx, host.PluginSpec{Name: "arm", Path: wasmtest.Build(t, "testdata/wasmstop"),
		Grants: wire.Capabilities{Actuator: true}, Limits: host.Limits{Concurrency: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if a := p.Manifest().Actuation; !a.Stop || a.Watchdog != "" {
		t.Fatalf("manifest actuation %+v, want a stop handler and no watchdog", a)
	}
	call := func(name string) json.RawMessage {
		t.Helper()
		// By the declared name: loaded as "arm", its tools are arm.* (host.ToolName).
		if tl, ok := p.Tool(name); ok {
			out, err := tl.Call(ctx, json.RawMessage(`{}`))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return out
		}
		t.Fatalf("no tool %s", name)
		return nil
	}
	call("arm.move")
	res := h.StopAll(ctx)
	if len(res) != 1 || !res[0].Acked || res[0].Plugin != "arm" {
		t.Fatalf("StopAll = %+v", res)
	}
	var st struct {
		Moving  bool
		Reasons []string
	}
	if err := json.Unmarshal(call("arm.state"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Moving || !slices.Equal(st.Reasons, []string{wire.StopCommanded}) {
		t.Errorf("after StopAll: %+v, want stopped once for %q", st, wire.StopCommanded)
	}
}

// TestWASMWatchdogRefused: a watchdog needs a process plugin; a WASM
// plugin asking for one does not load, and the error says why.
func TestWASMWatchdogRefused(t *testing.T) {
	h := wasmtest.NewHost(t, host.Config{})
	_, err := h.Load(context.Background(), host.PluginSpec{Name: "wd", Path: wasmtest.Build(t, "testdata/wasmwatchdog")})
	if err == nil || !strings.Contains(err.Error(), "sdk.Watchdog needs a process plugin") {
		t.Fatalf("Load = %v, want refused: the watchdog needs a process plugin", err)
	}
}

// TestCheckActuation: a manifest's watchdog must parse, lie within bounds
// and have a stop handler to call.
func TestCheckActuation(t *testing.T) {
	for _, c := range []struct {
		a    wire.ActuationDef
		want string
	}{
		{wire.ActuationDef{Stop: true, Watchdog: "300ms"}, ""},
		{wire.ActuationDef{Stop: true}, ""},
		{wire.ActuationDef{Watchdog: "300ms"}, "needs a stop handler"},
		{wire.ActuationDef{Stop: true, Watchdog: "5ms"}, "from 30ms to 1m0s"},
		{wire.ActuationDef{Stop: true, Watchdog: "soon"}, `"soon"`},
	} {
		err := host.CheckManifest(wire.Manifest{ABI: wire.ABIVersion, Actuation: c.a})
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.a, err, c.want)
		}
	}
}
