package plugintest

import (
	"context"

	"github.com/depai/depai/agent/host"
)

// StopAll stops the plugin as the agent's emergency stop does, through the
// host's StopAll: its stop handler (sdk.OnStop) runs with StopReason
// wire.StopCommanded. The result says whether it acknowledged.
func (p *Plugin) StopAll(ctx context.Context) []host.StopResult { return p.Host().StopAll(ctx) }
