// Command wasmstop is a WASM actuator plugin for the host's test of the
// stop contract on the WASM transport: it records the stops it is given.
package main

import (
	"context"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

type none struct{}

type state struct {
	Moving  bool     `json:"moving"`
	Reasons []string `json:"reasons"`
}

// One instance serves every call in the test (concurrency 1), so its
// globals are the plugin's state.
var st = state{Reasons: []string{}}

func init() {
	sdk.Plugin("wasmstop", "0.1.0")
	sdk.Requests(wire.Capabilities{Actuator: true})
	sdk.Tool("arm.move", "Starts moving.", func(context.Context, none) (none, error) {
		st.Moving = true
		return none{}, nil
	}, sdk.Actuator())
	sdk.Tool("arm.state", "What the plugin was told.", func(context.Context, none) (state, error) { return st, nil })
	sdk.OnStop(func(ctx context.Context) error {
		st.Moving = false
		st.Reasons = append(st.Reasons, sdk.StopReason(ctx))
		return nil
	})
}

func main() { sdk.Main() }
