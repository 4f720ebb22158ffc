// Package host loads plugins and runs their calls: one dispatcher for the
// host methods plugins call back into, one policy engine that checks every
// capability against the agent's grants, and two transports — WASM (wazero,
// the default and the only choice for untrusted code) and process plugins
// (hashicorp/go-plugin over gRPC) for device drivers and native libraries.
package host

import (
	"context"
	"time"

	"github.com/depai/depai/sdk/wire"
)

// Transport starts plugins of one kind.
type Transport interface {
	// Load starts the plugin at spec.Path, checks its manifest and returns a
	// running instance. A plugin that is not of this transport's kind, speaks
	// another major ABI or never completes its handshake is an error naming
	// the plugin and the reason.
	Load(ctx context.Context, spec LoadSpec) (Instance, error)
}

// LoadSpec is everything a transport needs to start one plugin.
type LoadSpec struct {
	Name   string            // the name the agent config gives the plugin
	Path   string            // .wasm module or native executable
	Grants wire.Capabilities // what the agent config grants
	Limits Limits
	Host   Dispatcher // where the plugin's host_calls go
	// InitTimeout bounds the plugin's own start-up (see Config.InitTimeout);
	// 0: the transport's default.
	InitTimeout time.Duration
	// UnconfinedOK lists the confinement features (Feature*) this plugin
	// may run without when the kernel lacks them. Any other missing
	// feature fails the load.
	UnconfinedOK []string
	// OnGiveUp is called, once and from a goroutine of its own, when the
	// transport stops restarting a plugin that keeps crashing: the host
	// quarantines it. Nil: nobody is told.
	OnGiveUp func(err error)
	// Restarted, when set, is called each time the transport restarted
	// the plugin after a crash.
	Restarted func()
}

// Confinement features of process plugins, as sdk/wire names them.
const (
	FeatureLandlock    = wire.ConfineLandlock
	FeatureLandlockNet = wire.ConfineLandlockNet
	FeatureSignals     = wire.ConfineSignals
	FeatureSeccomp     = wire.ConfineSeccomp
	FeaturePIDNS       = wire.ConfinePIDNS
)

// Confinement says what a transport enforces on one plugin.
type Confinement struct {
	Enforced []string `json:"enforced"`          // what holds, in words
	Missing  []string `json:"missing,omitempty"` // Feature* the kernel lacks, run without because unconfined_ok allowed it
}

// Confined is implemented by instances that report their confinement.
type Confined interface {
	Confinement() Confinement
}

// Limits bound a plugin's resources. Zero fields take the defaults in
// DefaultLimits.
type Limits struct {
	MemoryBytes     uint64        // WASM linear memory cap
	CallTimeout     time.Duration // per call, when the caller's context has no earlier deadline
	Concurrency     int           // calls in flight (WASM: instances in the pool)
	MaxMessageBytes int           // payload size either way
	OutputBytes     int           // bytes per second of stdout and stderr that reach the log
}

// DefaultLimits are the limits of a plugin whose config sets none.
var DefaultLimits = Limits{
	MemoryBytes:     64 << 20,
	CallTimeout:     10 * time.Second,
	Concurrency:     4,
	MaxMessageBytes: 4 << 20,
	OutputBytes:     64 << 10,
}

// Instance is one loaded plugin.
type Instance interface {
	Manifest() wire.Manifest
	// Call runs one method. It returns within ctx's deadline (or the call
	// timeout) plus a small margin even if the plugin hangs, panics or dies;
	// failures come back as Result.Error with a wire code.
	Call(ctx context.Context, call wire.Call) wire.Result
	Close(ctx context.Context) error
}

// Dispatcher serves the host methods (wire.Host*) for plugins. It enforces
// the plugin's grants: a method the plugin was not granted returns a
// wire.CodeDenied error.
type Dispatcher interface {
	HostCall(ctx context.Context, plugin, method string, payload []byte) ([]byte, *wire.Error)
}
