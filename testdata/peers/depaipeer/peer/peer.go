// Package peer builds one depai agent for the harness and runs its turns
// (see package depaipeer). It is apart from depaipeer so that a peer binary
// links only the plugin transport it uses: depaipeer's list of every peer
// links both, and a transport's packages cost every start their package
// initialisation (wazero; gRPC, protobuf and go-plugin).
package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/tool"

	"peers/harness"
)

// Transports makes a peer's plugin transports (agent.Options.NewTransports).
type Transports = func(cacheDir string, log *slog.Logger) (map[string]host.Transport, error)

// Peer is one built depai agent and its fleet.
type Peer struct {
	f *agent.Fleet
	a *agent.Agent
}

// Close closes the fleet (every turn record written) and lets go of it:
// the harness may still hold the Peer (its benchmarks keep their closures),
// and without the fleet it no longer keeps its heap alive for the collector
// to mark on every later run.
func (p *Peer) Close(ctx context.Context) error {
	err := p.f.Close(ctx)
	p.f, p.a = nil, nil
	return err
}

// NewInProc has the echo tool as an in-process Go tool.
func NewInProc(ctx context.Context, baseURL string) (harness.Agent, error) {
	echo, err := tool.New("aecho.echo", harness.ToolDesc, tool.EffectNone,
		func(_ context.Context, in harness.EchoArgs) (harness.EchoResult, error) {
			return harness.EchoResult{Echo: harness.Echo(in.Text)}, nil
		})
	if err != nil {
		return nil, err
	}
	return open(ctx, baseURL, "", nil, map[string][]tool.Tool{"peer": {echo}})
}

// NewPlugin has the echo tool as a plugin (../echoplugin) on transport,
// which newTransports makes.
func NewPlugin(transport string, newTransports Transports) harness.Ctor {
	return func(ctx context.Context, baseURL string) (harness.Agent, error) {
		return open(ctx, baseURL, transport, newTransports, nil)
	}
}

// open builds the agent; transport "" means no plugin (the tool is in tools).
func open(ctx context.Context, baseURL, transport string, newTransports Transports, tools map[string][]tool.Tool) (harness.Agent, error) {
	_, self, _, _ := runtime.Caller(0)
	plugin := filepath.Join(filepath.Dir(self), "..", "echoplugin")
	dir, err := os.MkdirTemp("", "depaipeer-")
	if err != nil {
		return nil, err
	}
	plugins := ""
	if transport != "" {
		plugins = fmt.Sprintf("plugins:\n  - {name: aecho, path: %q, transport: %s}\n", plugin, transport)
	}
	yaml := fmt.Sprintf(`name: peer
persona: %q
model: {base_url: %q, model: %q}
tools: []
%slimits: {model_calls: 4, tool_calls: 4, concurrency: 8}
`, harness.Instruction, baseURL, harness.Model, plugins)
	// Parsed from memory: a program that embeds depai need not write a
	// file (the name only places errors and relative paths).
	file, err := config.Parse(filepath.Join(dir, "peer.yaml"), []byte(yaml))
	if err != nil {
		return nil, err
	}
	cache := filepath.Join(os.TempDir(), "depaipeer-cache")
	f, err := agent.Open(ctx, file, agent.Options{DataDir: filepath.Join(dir, "data"), CacheDir: cache, Tools: tools, NewTransports: newTransports})
	if err != nil {
		return nil, err
	}
	if err := f.WaitPlugins(ctx); err != nil {
		return nil, err
	}
	a, err := f.Agent("peer")
	if err != nil {
		return nil, err
	}
	return &Peer{f: f, a: a}, nil
}

// Turn runs one turn up to its answer; a failed turn is an
// *agent.TurnError.
func (p *Peer) Turn(ctx context.Context, input string) (string, error) {
	for ev, err := range p.a.Handle(ctx, agent.Input{Text: input, OneShot: true}) {
		if err != nil {
			return "", err
		}
		switch ev.Type {
		case agent.EventReply:
			return ev.Text, nil // its record is written on; see the package doc
		case agent.EventError:
			return "", &agent.TurnError{Code: ev.Code, Message: ev.Error}
		}
	}
	return "", errors.New("the turn ended without an answer")
}

// WaitStored waits until every answered turn's record is durable.
func (p *Peer) WaitStored(ctx context.Context) error { return p.a.WaitStored(ctx) }

// Main is a peer binary's main: harness.Main, then it waits for the
// records of the turns it answered before the process exits (the exit is
// part of the cold start the harness measures).
func Main(name string, ctor harness.Ctor) {
	var built *Peer
	harness.Main(name, func(ctx context.Context, baseURL string) (harness.Agent, error) {
		a, err := ctor(ctx, baseURL)
		built, _ = a.(*Peer)
		return a, err
	})
	if built != nil {
		if err := built.WaitStored(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "%s: turn records: %v\n", name, err)
			os.Exit(1)
		}
	}
}
