package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/sdk/wire"
)

// ExampleNew wires a host with the WASM transport, loads a plugin with its
// grants and offers its tools to the agent's tool set.
func ExampleNew() {
	ctx := context.Background()
	tr, err := wasm.New(wasm.Config{CacheDir: "/var/cache/depai/wasm"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close(ctx)
	h := host.New(host.Config{
		Transports: map[string]host.Transport{host.KindWASM: tr},
		Logger:     slog.Default(),
		Emit: func(plugin, topic string, payload json.RawMessage) error {
			fmt.Printf("%s published %s on %s\n", plugin, payload, topic)
			return nil
		},
	})
	defer h.Close(ctx)
	p, err := h.Load(ctx, host.PluginSpec{
		Name:   "notes",
		Path:   "plugins/notes.wasm",
		Grants: wire.Capabilities{MemoryRead: []string{"notes"}, MemoryWrite: []string{"notes"}},
		Limits: host.Limits{CallTimeout: 5 * time.Second},
	})
	if err != nil {
		fmt.Println(err) // names the plugin and, e.g., what it requests but is not granted
		return
	}
	tools := tool.NewSet()
	if err := tools.Add(p.Tools()...); err != nil {
		fmt.Println(err)
	}
}
