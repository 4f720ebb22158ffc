package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

type searchArgs struct {
	Query     string `json:"query" jsonschema:"what to look for"`
	Namespace string `json:"namespace,omitempty" jsonschema:"limit the search to this namespace and those below it"`
	Kind      string `json:"kind,omitempty" jsonschema:"only records of this kind: message, turn, observation, reading, fact, task, receipt, audit"`
	Limit     int    `json:"limit,omitempty" jsonschema:"at most this many results (default 10)"`
}

type foundRecord struct {
	ID        string    `json:"id"`
	Namespace string    `json:"namespace"`
	Kind      string    `json:"kind"`
	Author    string    `json:"author,omitempty"`
	Time      time.Time `json:"time"`
	Text      string    `json:"text"`
}

type searchResult struct {
	Records []foundRecord `json:"records"`
}

type putArgs struct {
	Text      string          `json:"text" jsonschema:"what to remember"`
	Kind      string          `json:"kind,omitempty" jsonschema:"observation (default), fact, task or reading"`
	Namespace string          `json:"namespace,omitempty" jsonschema:"where to store it (default: the agent's own namespace)"`
	Key       string          `json:"key,omitempty" jsonschema:"for facts: what the fact is about; a newer fact with the same key supersedes it"`
	Tags      []string        `json:"tags,omitempty"`
	Data      json.RawMessage `json:"data,omitempty" jsonschema:"structured data to keep with the text"`
	// IdempotencyKey makes a retried call write once: a call with a key
	// this agent used before stores nothing and answers with the first
	// record (kept 24 h).
	IdempotencyKey string `json:"idempotency_key,omitempty" jsonschema:"optional: a key naming this write, so that a retry of the same call stores it once"`
}

type putResult struct {
	ID       string `json:"id"`
	Replayed bool   `json:"replayed,omitempty"` // an earlier call with the idempotency key stored it
}

type clockResult struct {
	UTC  time.Time `json:"utc"`
	Unix int64     `json:"unix"`
}

type none struct{}

// builtinNames are the built-in tools, in the order an agent offers them.
var builtinNames = []string{"memory.search", "memory.put", "clock", "agent.status"}

// builtinTools are the tools every agent has unless its config narrows them
// (config.Agent.Tools: nil is all of them).
// Only the tools the config names are built: a tool's schemas come from
// reflection over its types (agent.status's output is the whole Status), and
// that was most of an agent's construction.
func (a *Agent) builtinTools() ([]tool.Tool, error) {
	names := builtinNames
	if a.cfg.Tools != nil {
		names = nil
		for _, name := range a.cfg.Tools {
			if strings.HasPrefix(name, "fleet.") {
				continue // the mesh's tools (fleet_mesh.go), added when the fleet joins it
			}
			if !slices.Contains(builtinNames, name) {
				return nil, fmt.Errorf("tools: no built-in tool %q (have %s)", name, strings.Join(builtinNames, ", "))
			}
			names = append(names, name)
		}
	}
	out := make([]tool.Tool, 0, len(names))
	for _, name := range names {
		t, err := a.builtinTool(name)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// builtinTool builds the built-in tool name (one of builtinNames).
func (a *Agent) builtinTool(name string) (tool.Tool, error) {
	switch name {
	case "memory.search":
		return tool.New(name, "Search the agent's memory: past turns, observations, facts and readings.", tool.EffectNone,
			func(ctx context.Context, in searchArgs) (searchResult, error) {
				recs, err := a.searchMemory(ctx, in)
				if err != nil {
					return searchResult{}, host.MemoryError("memory.search", err)
				}
				out := searchResult{Records: []foundRecord{}}
				for _, r := range recs {
					out.Records = append(out.Records, foundRecord{ID: r.ID, Namespace: r.Namespace, Kind: string(r.Kind), Author: r.Author, Time: r.Time, Text: r.Text})
				}
				return out, nil
			})
	case "memory.put":
		return tool.New(name, "Remember something: an observation, a fact, a task.", tool.EffectWrite,
			func(ctx context.Context, in putArgs) (putResult, error) {
				kind := memory.Kind(in.Kind)
				if kind == "" {
					kind = memory.KindObservation
				}
				ns := in.Namespace
				if ns == "" {
					ns = a.ns
				}
				tags := in.Tags
				if d, ok := depthFrom(ctx); ok {
					// What a turn writes carries its depth, so the wakes it
					// causes are one hop further from their cause.
					tags = append(slices.Clip(tags), depthTag+strconv.Itoa(d))
				}
				rec := memory.Record{Namespace: ns, Kind: kind, Author: a.cfg.Name, Text: in.Text, Key: in.Key, Tags: tags, Data: in.Data}
				if in.IdempotencyKey != "" {
					recs, first, err := a.mem.PutOnce(ctx, in.IdempotencyKey, rec)
					if errors.Is(err, memory.ErrKeyReused) {
						return putResult{}, &wire.Error{Code: wire.CodeInvalidArgument, Message: "memory.put: " + err.Error()}
					}
					if err != nil {
						return putResult{}, host.MemoryError("memory.put", err)
					}
					return putResult{ID: recs[0].ID, Replayed: !first}, nil
				}
				recs, err := a.mem.Put(ctx, rec)
				if err != nil {
					return putResult{}, host.MemoryError("memory.put", err)
				}
				return putResult{ID: recs[0].ID}, nil
			})
	case "clock":
		return tool.New(name, "The current time.", tool.EffectNone,
			func(context.Context, none) (clockResult, error) {
				now := time.Now().UTC()
				return clockResult{UTC: now, Unix: now.Unix()}, nil
			})
	case "agent.status":
		return tool.New(name, "The status of every agent in the fleet.", tool.EffectNone,
			func(context.Context, none) ([]Status, error) {
				var ss []Status
				for _, o := range a.fleet.agents {
					ss = append(ss, o.Status())
				}
				return ss, nil
			})
	}
	return nil, fmt.Errorf("tools: no built-in tool %q (have %s)", name, strings.Join(builtinNames, ", "))
}

// searchMemory recalls records for a query across the namespaces the agent
// may read (or the one it names), once its own pending writes are indexed.
func (a *Agent) searchMemory(ctx context.Context, in searchArgs) ([]memory.Record, error) {
	limit := in.Limit
	if limit <= 0 {
		limit = 10
	}
	var kinds []memory.Kind
	if in.Kind != "" {
		kinds = []memory.Kind{memory.Kind(in.Kind)}
	}
	a.syncRecall(ctx)
	return a.search(ctx, in.Query, in.Namespace, kinds, limit)
}
