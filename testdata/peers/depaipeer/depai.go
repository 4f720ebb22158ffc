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
// A turn counts as done at its answer (agent.EventReply): the turn's
// durable record is written on after it (agent.EventStored says when), so
// the next turn overlaps the previous one's fsync and the group commit
// serves both. The record is never dropped: stopping at the answer does not
// cancel it, the binaries under cmd/ wait for every record (WaitStored)
// before they exit, and agent.TestKilledAfterAnswersKeepsStoredTurns shows
// what a kill -9 right after answers keeps.
//
// This copy lives in depai's testdata/peers (the harness's run.sh picks it
// up) and follows depai's API: a failed turn is an *agent.TurnError, and an
// operator input without a role is the embedding program's own.
package depaipeer

import (
	"context"
	"errors"
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
	// Parsed from memory: a program that embeds depai need not write a
	// file (the name only places errors and relative paths).
	file, err := config.Parse(filepath.Join(dir, "peer.yaml"), []byte(yaml))
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

// Turn runs one turn up to its answer; a failed turn is an
// *agent.TurnError.
func (p *peer) Turn(ctx context.Context, input string) (string, error) {
	for ev, err := range p.a.Handle(ctx, agent.Input{Text: input}) {
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
func (p *peer) WaitStored(ctx context.Context) error { return p.a.WaitStored(ctx) }

// Main is a peer binary's main: harness.Main, then it waits for the
// records of the turns it answered before the process exits (the exit is
// part of the cold start the harness measures).
func Main(name string, ctor harness.Ctor) {
	var built *peer
	harness.Main(name, func(ctx context.Context, baseURL string) (harness.Agent, error) {
		a, err := ctor(ctx, baseURL)
		built, _ = a.(*peer)
		return a, err
	})
	if built != nil {
		if err := built.WaitStored(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "%s: turn records: %v\n", name, err)
			os.Exit(1)
		}
	}
}
