// Package mcpserver offers the fleet to Model Context Protocol clients
// (`depai mcp` over stdio, and the operator API's Streamable HTTP endpoint
// at /mcp). Every agent's tools become MCP tools named AGENT.TOOL, plus
// AGENT.ask (a message to the agent) and AGENT.command (an operator
// command). Every call goes through the agent exactly as an operator's
// /call would: the policy engine decides it, with the MCP client's operator
// role, and audits it. The other direction — MCP servers as an agent's
// tools — is package agent/mcp.
package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/tool"
)

// Backend is the fleet an MCP server serves: the agents in this process, or
// a running depai run reached over the operator API.
type Backend interface {
	AgentNames(ctx context.Context) ([]string, error)
	// Send delivers text (a message or an operator command) to an agent as
	// the server's operator and streams what happens.
	Send(ctx context.Context, agentName, text string) iter.Seq2[agent.Event, error]
}

// Version is what the server says it is.
const Version = "0.2.0"

// NewServer builds an MCP server offering the fleet's tools as they are
// now. Tool lists change as plugins load: build a new server per session.
func NewServer(ctx context.Context, b Backend) (*mcp.Server, error) {
	s := mcp.NewServer(&mcp.Implementation{Name: "depai", Version: Version}, nil)
	names, err := b.AgentNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("mcp: list agents: %w", err)
	}
	for _, name := range names {
		ev, err := last(b.Send(ctx, name, "/tools"))
		if err != nil {
			return nil, fmt.Errorf("mcp: tools of %s: %w", name, err)
		}
		var tools agent.ToolsReport
		if err := json.Unmarshal(ev.Data, &tools); err != nil {
			return nil, fmt.Errorf("mcp: tools of %s: %w", name, err)
		}
		for _, spec := range tools.Tools {
			s.AddTool(toolOf(name, spec), callHandler(b, name, spec.Name))
		}
		s.AddTool(&mcp.Tool{
			Name: name + ".ask", Description: "Send a message to agent " + name + " and return its reply (one turn of its model).",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string","description":"the message"}},"required":["text"]}`),
		}, textHandler(b, name, ""))
		s.AddTool(&mcp.Tool{
			Name: name + ".command", Description: "Run an operator command on agent " + name + " (/status, /stop, /approvals, …); the operator's role decides what is allowed.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string","description":"the command, starting with /"}},"required":["text"]}`),
		}, textHandler(b, name, "/"))
	}
	return s, nil
}

func toolOf(agentName string, spec tool.Spec) *mcp.Tool {
	in := spec.InputSchema
	if len(in) == 0 {
		in = json.RawMessage(`{"type":"object"}`)
	}
	t := &mcp.Tool{Name: agentName + "." + spec.Name, Description: spec.Description, InputSchema: in}
	if spec.Effect.Gated() {
		t.Description += fmt.Sprintf(" [%s: decided by %s's safety policy]", spec.Effect, agentName)
		t.Annotations = &mcp.ToolAnnotations{DestructiveHint: ptr(true)}
	} else if spec.Effect == tool.EffectNone {
		t.Annotations = &mcp.ToolAnnotations{ReadOnlyHint: true}
	}
	return t
}

func ptr[T any](v T) *T { return &v }

// callHandler runs one tool through the agent's /call, so the policy and
// the audit log see it as any operator's call.
func callHandler(b Backend, agentName, toolName string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		args := req.Params.Arguments
		if len(args) == 0 {
			args = json.RawMessage("{}")
		}
		ev, err := last(b.Send(ctx, agentName, "/call "+toolName+" "+string(args)))
		return result(ev, err)
	}
}

func textHandler(b Backend, agentName, prefix string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var in struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(req.Params.Arguments, &in); err != nil || strings.TrimSpace(in.Text) == "" {
			return errorResult("invalid", `expected {"text": "..."}`), nil
		}
		text := strings.TrimSpace(in.Text)
		if prefix == "/" && !strings.HasPrefix(text, "/") {
			return errorResult("invalid", "a command starts with /; use "+agentName+".ask for a message"), nil
		}
		if prefix == "" && strings.HasPrefix(text, "/") {
			return errorResult("invalid", "that is a command; use "+agentName+".command"), nil
		}
		ev, err := last(b.Send(ctx, agentName, text))
		return result(ev, err)
	}
}

// result turns the event that ended a call into an MCP result: an error
// event is a tool error (IsError) with its code, never a protocol failure.
func result(ev agent.Event, err error) (*mcp.CallToolResult, error) {
	if err != nil {
		return errorResult("unavailable", err.Error()), nil
	}
	if ev.Type == agent.EventError {
		return errorResult(ev.Code, ev.Error), nil
	}
	text := ev.Text
	if text == "" {
		text = string(ev.Data)
	}
	r := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
	if len(ev.Data) > 0 && json.Valid(ev.Data) && ev.Data[0] == '{' {
		r.StructuredContent = ev.Data
	}
	return r, nil
}

func errorResult(code, msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "error [" + code + "]: " + msg}}}
}

// last is the event that ends a stream.
func last(seq iter.Seq2[agent.Event, error]) (agent.Event, error) {
	var out agent.Event
	got := false
	for ev, err := range seq {
		if err != nil {
			return agent.Event{}, err
		}
		if ev.Type == agent.EventStored {
			continue // the reply before it is the answer; it is durable now
		}
		out, got = ev, true
	}
	if !got {
		return agent.Event{}, errors.New("no answer")
	}
	return out, nil
}
