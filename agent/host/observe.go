package host

import (
	"time"

	"github.com/depai/depai/sdk/wire"
)

// Observer is told what the host does with its plugins, for metrics
// (agent/metrics implements it). Its methods run on the paths they measure
// — a tool call, a sensor poll, a stop — so they must return at once.
// Plugin names come from the agent config, so they are a bounded set.
type Observer interface {
	// PluginCall is one call into a plugin: kind is CallTool, CallSensor or
	// CallStop; outcome is "ok", a wire error code, or "other" for a code
	// the wire contract does not define.
	PluginCall(plugin, kind, outcome string, took time.Duration)
	// PluginRestarted: the transport restarted the plugin after a crash.
	PluginRestarted(plugin string)
	// PluginQuarantined: an actuator plugin that did not acknowledge a stop
	// was unloaded, and Load refuses it until ClearQuarantine.
	PluginQuarantined(plugin string)
}

// Kinds of calls into a plugin, as Observer.PluginCall reports them.
const (
	CallTool   = "tool"
	CallSensor = "sensor"
	CallStop   = "stop"
)

// observe reports one call into p that started at start.
func (p *Plugin) observe(kind string, start time.Time, res wire.Result) {
	if p.obs == nil {
		return
	}
	outcome := "ok"
	if res.Error != nil {
		outcome = callOutcome(res.Error.Code)
	}
	p.obs.PluginCall(p.spec.Name, kind, outcome, time.Since(start))
}

// callOutcome is a plugin's error code as an outcome: a code the wire
// contract does not define (a plugin may send any string) is "other", so a
// plugin cannot grow the series.
func callOutcome(code string) string {
	switch code {
	case wire.CodeInvalidArgument, wire.CodeNotFound, wire.CodeDenied, wire.CodeForbidden, wire.CodeTimeout,
		wire.CodeUnavailable, wire.CodeTooLarge, wire.CodeCrashed, wire.CodeRateLimited, wire.CodeInternal:
		return code
	}
	return "other"
}

// restarted is LoadSpec.Restarted for the plugin named name.
func (h *Host) restarted(name string) func() {
	if h.cfg.Observer == nil {
		return nil
	}
	return func() { h.cfg.Observer.PluginRestarted(name) }
}

func (h *Host) observeQuarantine(name string) {
	if h.cfg.Observer != nil {
		h.cfg.Observer.PluginQuarantined(name)
	}
}
