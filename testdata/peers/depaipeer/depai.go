// Package depaipeer runs the harness turn through a depai agent. The echo
// tool is an in-process Go tool (agent.Options.Tools; NewInProc) or a plugin
// (echoplugin/, written with depai's SDK) on the WASM transport (NewWASM) or
// as a process plugin (NewProcess). The tool is named "aecho.echo" so that it
// sorts first among the agent's tools (the scripted server calls the first
// tool offered); the agent's built-in tools are narrowed to clock. depai's
// model adapter builds its own HTTP client (harness.HTTPClient cannot be
// handed to it). Every depai turn also does what the other peers do not:
// recall from memory, the policy decision and its audit records, and the
// durable turn record. The harness's 8 sessions share one agent, so the
// agent runs up to 8 turns at once (limits.concurrency; depai's default is 2,
// and the other 6 would wait in its inbox).
//
// This copy lives in depai's testdata/peers (the harness's run.sh picks it
// up) and follows depai's API: ask returns an *agent.TurnError for a failed
// turn, and an operator input without a role is the embedding program's own.
package depaipeer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/tool"

	"peers/harness"
)

// All are the depai peers; each has a binary under cmd/ with the same name.
var All = []harness.Named{
	{Name: "depai-inproc", New: NewInProc},
	{Name: "depai-wasm", New: NewWASM},
	{Name: "depai-process", New: NewProcess},
}

type peer struct{ a *agent.Agent }

// NewInProc has the echo tool as an in-process Go tool.
func NewInProc(ctx context.Context, baseURL string) (harness.Agent, error) {
	echo, err := tool.New("aecho.echo", harness.ToolDesc, tool.EffectNone,
		func(_ context.Context, in harness.EchoArgs) (harness.EchoResult, error) {
			return harness.EchoResult{Echo: harness.Echo(in.Text)}, nil
		})
	if err != nil {
		return nil, err
	}
	return open(ctx, baseURL, "", map[string][]tool.Tool{"peer": {echo}})
}

// NewWASM has the echo tool as a WASM plugin.
func NewWASM(ctx context.Context, baseURL string) (harness.Agent, error) {
	return open(ctx, baseURL, "wasm", nil)
}

// NewProcess has the echo tool as a process plugin.
func NewProcess(ctx context.Context, baseURL string) (harness.Agent, error) {
	return open(ctx, baseURL, "process", nil)
}

// open builds the agent; transport "" means no plugin (the tool is in tools).
func open(ctx context.Context, baseURL, transport string, tools map[string][]tool.Tool) (harness.Agent, error) {
	_, self, _, _ := runtime.Caller(0)
	plugin := filepath.Join(filepath.Dir(self), "echoplugin")
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
tools: [clock]
%slimits: {model_calls: 4, tool_calls: 4, concurrency: 8}
`, harness.Instruction, baseURL, harness.Model, plugins)
	path := filepath.Join(dir, "peer.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	file, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	cache := filepath.Join(os.TempDir(), "depaipeer-cache")
	f, err := agent.Open(ctx, file, agent.Options{DataDir: filepath.Join(dir, "data"), CacheDir: cache, Tools: tools})
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
	return &peer{a: a}, nil
}

// Turn runs one turn; a failed turn is an *agent.TurnError.
func (p *peer) Turn(ctx context.Context, input string) (string, error) {
	return p.a.Ask(ctx, agent.Input{Text: input})
}
