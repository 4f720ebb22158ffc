package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/operator"
)

// scriptedFleet is a set of agents that answer from a script instead of a
// model: the HTTP server, the SSE stream and the client under test are real;
// only the agent's intelligence is scripted. Texts it knows:
//
//	/status    one reply with the agent's name
//	stream     delta, delta, tool_call, tool_result, reply
//	block      a delta, then waits for ctx to end and records that on cancelled
//	fail       a delta, then an error
//	error CODE a delta, then an error event with CODE, as a failed turn ends
//	anything   "echo: " + text
type scriptedFleet struct {
	agents []*scriptedAgent
}

func newScriptedFleet(names ...string) *scriptedFleet {
	f := &scriptedFleet{}
	for _, n := range names {
		f.agents = append(f.agents, &scriptedAgent{name: n, cancelled: make(chan struct{}), started: make(chan struct{})})
	}
	return f
}

func (f *scriptedFleet) Agents() []operator.Agent {
	out := make([]operator.Agent, len(f.agents))
	for i, a := range f.agents {
		out[i] = a
	}
	return out
}

type scriptedAgent struct {
	name      string
	started   chan struct{} // closed when a "block" turn starts
	cancelled chan struct{} // closed when a "block" turn sees its ctx end
	once      sync.Once

	mu   sync.Mutex
	last agent.Input
}

func (a *scriptedAgent) Name() string { return a.name }

func (a *scriptedAgent) Status() agent.Status {
	return agent.Status{Name: a.name, Role: "digital", State: "idle", Model: "none", Started: time.Unix(0, 0).UTC()}
}

func (a *scriptedAgent) lastInput() agent.Input {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

func (a *scriptedAgent) Handle(ctx context.Context, in agent.Input) iter.Seq2[agent.Event, error] {
	return func(yield func(agent.Event, error) bool) {
		a.mu.Lock()
		a.last = in
		a.mu.Unlock()
		const id = "turn-1"
		reply := func(text string) { yield(agent.Event{Type: agent.EventReply, TurnID: id, Text: text}, nil) }
		switch in.Text {
		case "/status":
			reply(a.name + " is idle")
		case "stream":
			for _, ev := range []agent.Event{
				{Type: agent.EventDelta, TurnID: id, Text: "The time "},
				{Type: agent.EventDelta, TurnID: id, Text: "is noon."},
				{Type: agent.EventToolCall, TurnID: id, Tool: "clock", CallID: "c1", Data: json.RawMessage(`{}`)},
				{Type: agent.EventToolResult, TurnID: id, Tool: "clock", CallID: "c1", Data: json.RawMessage(`{"time":"12:00"}`)},
				{Type: agent.EventReply, TurnID: id, Text: "The time is noon.\nMulti-line."},
			} {
				if !yield(ev, nil) {
					return
				}
			}
		case "block":
			if !yield(agent.Event{Type: agent.EventDelta, TurnID: id, Text: "thinking"}, nil) {
				return
			}
			close(a.started)
			<-ctx.Done()
			a.once.Do(func() { close(a.cancelled) })
			yield(agent.Event{}, ctx.Err())
		case "fail":
			if !yield(agent.Event{Type: agent.EventDelta, TurnID: id, Text: "partial"}, nil) {
				return
			}
			yield(agent.Event{}, errors.New("model endpoint returned 500"))
		default:
			if code, ok := strings.CutPrefix(in.Text, "error "); ok {
				if yield(agent.Event{Type: agent.EventDelta, TurnID: id, Text: "partial"}, nil) {
					yield(agent.Event{Type: agent.EventError, TurnID: id, Code: code, Error: "scripted failure: " + code}, nil)
				}
				return
			}
			reply("echo: " + strings.TrimSpace(in.Text))
		}
	}
}
