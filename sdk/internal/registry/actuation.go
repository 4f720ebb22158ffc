package registry

import (
	"time"

	"github.com/depai/depai/sdk/wire"
)

// SetStop registers the plugin's stop handler as wire.MethodStop and says
// so in the manifest.
func (r *Registry) SetStop(h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[wire.MethodStop] = h
	r.manifest.Actuation.Stop = true
}

// SetWatchdog declares the watchdog timeout; the transport enforces it.
func (r *Registry) SetWatchdog(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifest.Actuation.Watchdog = d.String()
}
