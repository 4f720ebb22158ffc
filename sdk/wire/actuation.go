package wire

import (
	"fmt"
	"time"
)

// The actuator stop contract. A plugin that moves something declares a stop
// handler (Manifest.Actuation.Stop); the host calls MethodStop on every such
// plugin on the emergency stop, on unload, on shutdown and after the
// plugin's process restarted. A plugin may also declare a watchdog: the host
// then sends MethodHeartbeat every third of the timeout, and the plugin's
// SDK calls the stop handler by itself when no heartbeat arrived for the
// timeout — so a killed agent, or a cut link, still stops the machine.
const (
	MethodStop      = "$stop"      // host → plugin: stop every actuator now; payload StopArgs
	MethodHeartbeat = "$heartbeat" // host → plugin, periodic; payload HeartbeatArgs
)

// ActuationDef is what a plugin says about stopping its actuators.
type ActuationDef struct {
	// Stop says the plugin has a stop handler (MethodStop).
	Stop bool `json:"stop,omitempty"`
	// Watchdog is how long the plugin goes without a heartbeat before it
	// stops its actuators by itself (a Go duration); empty: no watchdog.
	Watchdog string `json:"watchdog,omitempty"`
}

// Bounds of a watchdog timeout: shorter ones trip on an ordinary scheduling
// hiccup of a loaded machine, longer ones are no longer a safety net.
const (
	MinWatchdog = 30 * time.Millisecond
	MaxWatchdog = time.Minute
)

// WatchdogTimeout parses Watchdog: 0 when there is none, an error naming the
// value when it is no Go duration within MinWatchdog..MaxWatchdog, or when
// there is a watchdog but no stop handler for it to call.
func (a ActuationDef) WatchdogTimeout() (time.Duration, error) {
	if a.Watchdog == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(a.Watchdog)
	if err != nil || d < MinWatchdog || d > MaxWatchdog {
		return 0, fmt.Errorf("actuation.watchdog %q: want a Go duration from %v to %v", a.Watchdog, MinWatchdog, MaxWatchdog)
	}
	if !a.Stop {
		return 0, fmt.Errorf("actuation.watchdog %q: a watchdog needs a stop handler to call (sdk.OnStop)", a.Watchdog)
	}
	return d, nil
}

// StopArgs is the payload of MethodStop.
type StopArgs struct {
	Reason string `json:"reason,omitempty"` // one of the Stop* reasons
}

// Why a stop handler runs. The host sends the first four; the plugin's SDK
// uses the last two when it stops the machine by itself.
const (
	StopCommanded = "stop"      // the emergency stop, or an operator's stop of this plugin
	StopUnload    = "unload"    // the plugin is being unloaded or replaced
	StopShutdown  = "shutdown"  // the agent is shutting down
	StopRestart   = "restart"   // the plugin's process restarted after a crash
	StopWatchdog  = "watchdog"  // no heartbeat from the host within the watchdog timeout
	StopHostLost  = "host_lost" // the host is gone; the plugin exits when the handler returns
)

// HeartbeatArgs is the payload of MethodHeartbeat.
type HeartbeatArgs struct {
	Seq uint64 `json:"seq"`
}
