package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/sdk/wire"
)

// invoke is the one path from a caller (the model, /call, a schedule) to a
// tool: the policy decides before any implementation sees the call, with
// the effect the config gives the tool (not what its provider claims), and
// the decision and the outcome are audited.
func (a *Agent) invoke(ctx context.Context, name string, args json.RawMessage, by policy.Principal) (json.RawMessage, error) {
	t, ok := a.tools.Get(name)
	if !ok {
		a.fleet.opts.Metrics.ToolCall(a.cfg.Name, "unknown", wire.CodeNotFound)
		return a.tools.Call(ctx, name, args) // the set explains the unknown name
	}
	ctx, span := a.fleet.startSpan(ctx, "execute_tool", name, trace.SpanKindInternal, func() []attribute.KeyValue {
		return []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", "execute_tool"),
			attribute.String("gen_ai.tool.name", name),
			attribute.String("gen_ai.tool.description", t.Spec().Description),
			attribute.String("gen_ai.agent.name", a.cfg.Name),
			attribute.String("depai.principal", by.String()),
		}
	})
	defer span.End()
	out, err := a.authorized(ctx, t, name, args, by)
	outcome := "ok"
	if err != nil {
		outcome = asToolError(err).Code
		span.SetStatus(codes.Error, outcome)
		span.SetAttributes(attribute.String("error.type", outcome))
	}
	a.fleet.opts.Metrics.ToolCall(a.cfg.Name, name, outcome)
	return out, err
}

func (a *Agent) authorized(ctx context.Context, t tool.Tool, name string, args json.RawMessage, by policy.Principal) (json.RawMessage, error) {
	d, _ := depthFrom(ctx)
	done, err := a.fleet.policy.Authorize(ctx, policy.Action{
		Agent: a.cfg.Name, Principal: by, Kind: policy.ActionTool, Name: name, Effect: t.Spec().Effect, Args: args, Depth: d,
	})
	if err != nil {
		return nil, err
	}
	out, err := a.tools.Call(ctx, name, args)
	done(out, err)
	return out, err
}

// runCalls runs one round of tool calls and reports them in the order the
// model asked for them. Calls that only read or write run in parallel;
// actuator and payment calls run one after another, in the model's order,
// once the others are done — so a robot is never told two things at once.
func (a *Agent) runCalls(ctx context.Context, calls []llm.ToolCall, emit func(Event)) []callNote {
	notes := make([]callNote, len(calls))
	var gated []int
	var wg sync.WaitGroup
	model := policy.Principal{Kind: policy.PrincipalModel, ID: a.cfg.Name}
	call := func(i int) {
		out, err := a.invoke(ctx, calls[i].Name, notes[i].Args, model)
		notes[i].Result, notes[i].Error = out, asToolError(err)
	}
	last := -1 // the last parallel call runs on this goroutine: one call starts none
	for i, c := range calls {
		args, argErr := cleanArgs(c.Arguments)
		notes[i] = callNote{ID: c.ID, Tool: c.Name, Args: args}
		emit(Event{Type: EventToolCall, Tool: c.Name, CallID: c.ID, Data: args})
		if argErr != nil {
			notes[i].Args = nil
			notes[i].Error = argErr
			continue
		}
		if a.gated(c.Name) {
			gated = append(gated, i)
			continue
		}
		if j := last; j >= 0 {
			wg.Go(func() { call(j) })
		}
		last = i
	}
	if last >= 0 {
		call(last)
	}
	wg.Wait()
	for _, i := range gated {
		call(i)
	}
	for _, n := range notes {
		ev := Event{Type: EventToolResult, Tool: n.Tool, CallID: n.ID, Data: n.Result}
		if n.Error != nil {
			ev.Error = n.Error.Error()
		}
		emit(ev)
	}
	return notes
}

// gated reports whether the policy treats the tool as an actuator or a
// payment.
func (a *Agent) gated(name string) bool {
	t, ok := a.tools.Get(name)
	if !ok {
		return false
	}
	return a.fleet.policy.EffectOf(a.cfg.Name, name, t.Spec().Effect).Gated()
}

// cleanArgs accepts the JSON arguments a model produced, forgiving a Markdown
// code fence around them; anything else that is not a JSON object is an error
// the model is told about.
func cleanArgs(s string) (json.RawMessage, *tool.Error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "```"); ok {
		rest = strings.TrimPrefix(rest, "json")
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "```"))
	}
	if s == "" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid([]byte(s)) || !strings.HasPrefix(s, "{") {
		return nil, &tool.Error{Code: tool.CodeInvalidArgument, Message: fmt.Sprintf("arguments must be one JSON object; got %.200q", s)}
	}
	return json.RawMessage(s), nil
}

func asToolError(err error) *tool.Error {
	if err == nil {
		return nil
	}
	var te *wire.Error
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &tool.Error{Code: tool.CodeTimeout, Message: err.Error(), Retryable: true}
	}
	return &tool.Error{Code: tool.CodeInternal, Message: err.Error()}
}

// toolContent is what the model reads as a tool's answer.
func toolContent(n callNote) string {
	if n.Error != nil {
		b, _ := json.Marshal(map[string]*tool.Error{"error": n.Error})
		return string(b)
	}
	if len(n.Result) == 0 {
		return "null"
	}
	return string(n.Result)
}

// modelTools describes the agent's tools to the model.
func (a *Agent) modelTools() []llm.ToolSpec {
	specs := a.tools.Specs()
	out := make([]llm.ToolSpec, len(specs))
	for i, s := range specs {
		out[i] = llm.ToolSpec{Name: s.Name, Description: s.Description, Parameters: s.InputSchema}
	}
	return out
}
