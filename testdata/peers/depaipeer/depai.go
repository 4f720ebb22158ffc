// Package depaipeer runs the harness turn through a depai agent. The echo
// tool is an in-process Go tool (agent.Options.Tools; NewInProc) or a plugin
// (echoplugin/, written with depai's SDK) on the WASM transport (NewWASM) or
// as a process plugin (NewProcess). The tool is named "aecho.echo" so that it
// sorts first among the agent's tools (the scripted server calls the first
// tool offered); the agent has no built-in tools (`tools: []`), so the model
// is offered the echo tool alone, as by every other peer. depai's
// model adapter builds its own HTTP client (harness.HTTPClient cannot be
// handed to it). Every depai turn also does what the other peers do not:
// recall from memory, the policy decision and its audit records, and the
// durable turn record. Each turn is a one-shot input (agent.Input.OneShot):
// the harness defines a turn as a fresh conversation, and every other peer
// starts one; without it depai's requests carried the agent's last six
// turns (4.1 KB a turn against the floor's 1.0 KB, and the server's CPU
// with them). The harness's 8 sessions share one agent, so the
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
// The peer itself is package peer (peer/): a binary under cmd/ imports it
// and the one transport it uses, so it links neither the other transport
// nor this list.
//
// This copy lives in depai's testdata/peers (the harness's run.sh picks it
// up) and follows depai's API: a failed turn is an *agent.TurnError, and an
// operator input without a role is the embedding program's own.
package depaipeer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/agent/host/wasm"

	"peers/depaipeer/peer"
	"peers/harness"
)

// All are the depai peers; each has a binary under cmd/ with the same name.
// With PEERS set (run.sh's regexp on peer names) only those it names are
// listed: the harness's BenchmarkTurn builds every listed peer on each of
// its -count runs, also those -bench leaves out, and a depai peer left
// running has a store, a recall index and, for the plugin peers, plugin
// instances or processes working beside the peer being measured.
var All = selected([]harness.Named{
	{Name: "depai-inproc", New: one("depai-inproc", NewInProc)},
	{Name: "depai-wasm", New: one("depai-wasm", NewWASM)},
	{Name: "depai-process", New: one("depai-process", NewProcess)},
})

func selected(all []harness.Named) []harness.Named {
	re, err := regexp.Compile("^(" + os.Getenv("PEERS") + ")")
	if os.Getenv("PEERS") == "" || err != nil {
		return all
	}
	var out []harness.Named
	for _, n := range all {
		if re.MatchString(n.Name) {
			out = append(out, n)
		}
	}
	return out
}

// live is the running instance of each peer: the harness makes a new one
// for each -count run and never closes the old, so one keeps the old
// from piling up — its fleet is closed (every turn record written) when
// the next is made.
var (
	liveMu sync.Mutex
	live   = map[string]*peer.Peer{}
)

func one(name string, ctor harness.Ctor) harness.Ctor {
	return func(ctx context.Context, baseURL string) (harness.Agent, error) {
		liveMu.Lock()
		defer liveMu.Unlock()
		if old := live[name]; old != nil {
			delete(live, name)
			if err := old.Close(ctx); err != nil {
				return nil, fmt.Errorf("%s: close the previous instance: %w", name, err)
			}
		}
		a, err := ctor(ctx, baseURL)
		if p, ok := a.(*peer.Peer); ok {
			live[name] = p
		}
		return a, err
	}
}

// NewInProc has the echo tool as an in-process Go tool.
var NewInProc = peer.NewInProc

// NewWASM has the echo tool as a WASM plugin.
var NewWASM = peer.NewPlugin("wasm", func(cacheDir string, log *slog.Logger) (map[string]host.Transport, error) {
	w, err := wasm.New(wasm.Config{CacheDir: filepath.Join(cacheDir, "wasm"), Logger: log})
	return map[string]host.Transport{host.KindWASM: w}, err
})

// NewProcess has the echo tool as a process plugin.
var NewProcess = peer.NewPlugin("process", func(_ string, log *slog.Logger) (map[string]host.Transport, error) {
	return map[string]host.Transport{host.KindProcess: process.New(process.Config{Logger: log})}, nil
})
