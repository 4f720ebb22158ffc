// Command wasmwatchdog asks for a watchdog, which a WASM plugin cannot
// have: the host must refuse to load it, saying why.
package main

import (
	"context"
	"time"

	"github.com/depai/depai/sdk"
)

func init() {
	sdk.Plugin("wasmwatchdog", "0.1.0")
	sdk.OnStop(func(context.Context) error { return nil })
	sdk.Watchdog(300 * time.Millisecond)
}

func main() { sdk.Main() }
