package sdk

import (
	"context"
	"encoding/json"

	"github.com/depai/depai/sdk/internal/codec"
	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// OnStop registers the plugin's stop handler: fn must command every actuator
// of the plugin to a safe stop (zero velocity, brakes on) and return once
// the command is given — not once motion has ended — so the agent's
// emergency stop is acknowledged within milliseconds. The host calls it on
// /stop, when the plugin is unloaded, when the agent shuts down and after
// the plugin's process restarted; the SDK calls it itself when the watchdog
// trips and when the host is gone (StopReason tells which). fn must be safe
// to call concurrently and repeatedly, also while the machine is at rest.
//
// A plugin with actuator tools should register one: the agent reports an
// actuator plugin without a stop handler on every emergency stop, and
// quarantines (unloads) a plugin whose handler fails or does not answer.
func OnStop(fn func(ctx context.Context) error) {
	registry.Default.SetStop(func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
		// A stop is carried out whatever its payload looks like.
		var args wire.StopArgs
		_ = codec.Unmarshal(payload, &args)
		if args.Reason == "" {
			args.Reason = wire.StopCommanded
		}
		if err := fn(context.WithValue(ctx, stopReasonKey{}, args.Reason)); err != nil {
			return nil, err
		}
		return json.RawMessage(`{}`), nil
	})
}

type stopReasonKey struct{}

// StopReason says why the stop handler whose ctx this is runs: one of
// wire.StopCommanded, StopUnload, StopShutdown, StopRestart, StopWatchdog or
// StopHostLost. With StopHostLost the plugin's process exits as soon as the
// handler returns (or its ctx ends), so a handler whose process *is* the
// machine (a simulator) may wait there until it has come to rest.
func StopReason(ctx context.Context) string {
	r, _ := ctx.Value(stopReasonKey{}).(string)
	return r
}
