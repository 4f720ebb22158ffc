package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/sdk/wire"
)

// TestWASM builds the plugin to WASM and asks it for the weather through
// the agent's host and its http.fetch grant, against the fixture API.
func TestWASM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	var mode atomic.Value
	srv, _ := fixtureAPI(t, &mode)
	h := wasmtest.NewHost(t, host.Config{})
	p, err := h.Load(context.Background(), host.PluginSpec{
		Name: "weather", Path: wasmtest.Build(t, "."),
		Grants: wire.Capabilities{HTTP: []string{"api.open-meteo.com", strings.TrimPrefix(srv.URL, "http://")}, Config: configKeys, Secrets: []string{"weather_api_key"}, Clock: true},
		Config: map[string]string{"base_url": srv.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range p.Tools() {
		if tl.Spec().Name != "weather.current" {
			continue
		}
		out, err := tl.Call(context.Background(), json.RawMessage(`{"lat":48.1173,"lon":11.5166}`))
		if err != nil {
			t.Fatal(err)
		}
		var c Current
		if err := json.Unmarshal(out, &c); err != nil || c.Temperature != 3.4 || c.Condition != "rain" {
			t.Fatalf("current = %s, %v", out, err)
		}
		return
	}
	t.Fatal("no weather.current tool")
}
