package process_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/sdk/wire"
)

// A process transport under the agent's host: the host checks the grants
// and serves the plugin's host calls; the transport starts, supervises and
// restarts the process.
func ExampleNew() {
	h := host.New(host.Config{
		Transports: map[string]host.Transport{
			host.KindProcess: process.New(process.Config{
				Logger:       slog.Default(),
				StartTimeout: 5 * time.Second,
				Restart:      process.Restart{MaxCrashes: 5, Window: time.Minute},
			}),
		},
	})
	defer h.Close(context.Background())
	p, err := h.Load(context.Background(), host.PluginSpec{
		Name:   "gnss",
		Kind:   host.KindProcess,      // never inferred: native code is asked for
		Path:   "./plugins/gnss/gnss", // built with `depai plugin build --native`
		Grants: wire.Capabilities{Emit: []string{"position"}},
		Limits: host.Limits{CallTimeout: 2 * time.Second},
	})
	if err != nil {
		slog.Error("load", "err", err)
		return
	}
	for _, t := range p.Tools() {
		slog.Info("tool", "name", t.Spec().Name)
	}
}
