//go:build wasip1

package sdk

import (
	"errors"
	"time"

	"github.com/depai/depai/sdk/internal/registry"
)

// Watchdog is for process plugins only. A WASM guest runs only while a call
// is in it — no thread or timer of its own runs between calls — so it
// cannot notice that heartbeats stopped, and it dies with the agent anyway.
// A WASM actuator relies on the host's stop (on /stop, unload and shutdown)
// and on a dead-man timeout in the device it commands. Rather than let a
// safety net the author asked for vanish silently, the plugin does not load.
func Watchdog(time.Duration) {
	registry.Default.Fail(errors.New("sdk.Watchdog needs a process plugin: a WASM guest runs only during calls and cannot notice missing heartbeats; build it natively, or rely on the host's stop and the device's own dead-man timeout"))
}
