//go:build !wasip1

package sdk

import (
	"fmt"
	"time"

	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// Watchdog makes the plugin stop its actuators by itself (it calls the
// OnStop handler, with StopReason wire.StopWatchdog) when the host's
// heartbeat has been missing for timeout — a hung agent, or a link cut
// between agent and plugin — and refuses actuator tool calls until
// heartbeats resume. The host sends one every timeout/3. If the agent dies
// outright the plugin learns it at once (its call socket closes, or the
// parent-death signal arrives) and stops with wire.StopHostLost before it
// exits. Call it in init(), after OnStop; timeout must lie within
// wire.MinWatchdog..wire.MaxWatchdog.
//
// It works for process plugins only: a WASM guest runs only while a call
// is in it, so nothing in it could notice a missing heartbeat.
func Watchdog(timeout time.Duration) {
	if timeout < wire.MinWatchdog || timeout > wire.MaxWatchdog {
		registry.Default.Fail(fmt.Errorf("sdk.Watchdog(%v): want a timeout from %v to %v", timeout, wire.MinWatchdog, wire.MaxWatchdog))
		return
	}
	registry.Default.SetWatchdog(timeout)
}
