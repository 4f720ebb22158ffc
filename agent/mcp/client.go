// Package mcp makes the tools of Model Context Protocol servers an agent's
// tools: the MCP servers an agent's config lists (a command speaking MCP on
// stdio, or a Streamable HTTP URL) are connected at start, and each of
// their tools is offered to the model and /call under the same grants,
// policy and audit as any other tool — an MCP tool that moves a robot is an
// actuator when a safety rule names it. The other direction, the fleet as
// an MCP server, is package agent/operator/mcpserver.
package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/sdk/wire"
)

// ClientConfig is one MCP server an agent uses.
type ClientConfig struct {
	Name string // prefixes nothing: the server's tool names are the agent's tool names; Source is "mcp:Name"
	// Command starts a server that speaks MCP on its stdin and stdout; its
	// environment is Env alone (nothing of the agent's).
	Command []string
	Dir     string   // the command's working directory
	Env     []string // "NAME=value"
	// URL is a Streamable HTTP endpoint, instead of Command.
	URL        string
	HTTPClient *http.Client
	// Timeout bounds connecting and each call. Default 30s.
	Timeout time.Duration
	// Effect gives each tool its effect; a tool it does not name is a write
	// (an MCP server's side effects are unknown), or none when the server
	// marks it read-only.
	Effect func(tool string, readOnly bool) tool.Effect
}

// Client is a session with one MCP server.
type Client struct {
	cfg     ClientConfig
	session *mcp.ClientSession
	tools   []tool.Tool

	closeOnce sync.Once
}

// Connect starts (or reaches) the server, initialises the session and lists
// its tools.
func Connect(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Effect == nil {
		cfg.Effect = func(_ string, readOnly bool) tool.Effect {
			if readOnly {
				return tool.EffectNone
			}
			return tool.EffectWrite
		}
	}
	var t mcp.Transport
	switch {
	case len(cfg.Command) > 0 && cfg.URL != "":
		return nil, fmt.Errorf("mcp %s: give command or url, not both", cfg.Name)
	case len(cfg.Command) > 0:
		cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
		cmd.Env, cmd.Dir = cfg.Env, cfg.Dir
		if cmd.Env == nil {
			cmd.Env = []string{}
		}
		t = &mcp.CommandTransport{Command: cmd, TerminateDuration: time.Second}
	case cfg.URL != "":
		t = &mcp.StreamableClientTransport{Endpoint: cfg.URL, HTTPClient: cfg.HTTPClient, MaxRetries: 1, DisableStandaloneSSE: true}
	default:
		return nil, fmt.Errorf("mcp %s: no command and no url", cfg.Name)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "depai", Version: "0.2.0"}, nil)
	session, err := c.Connect(cctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("mcp %s: connect: %w", cfg.Name, deadline(cctx, err, cfg.Timeout))
	}
	cl := &Client{cfg: cfg, session: session}
	for tl, err := range session.Tools(cctx, nil) {
		if err != nil {
			_ = session.Close()
			return nil, fmt.Errorf("mcp %s: list tools: %w", cfg.Name, deadline(cctx, err, cfg.Timeout))
		}
		t, err := cl.wrap(tl)
		if err != nil {
			_ = session.Close()
			return nil, fmt.Errorf("mcp %s: tool %q: %w", cfg.Name, tl.Name, err)
		}
		cl.tools = append(cl.tools, t)
	}
	return cl, nil
}

func deadline(ctx context.Context, err error, d time.Duration) error {
	if ctx.Err() != nil {
		return fmt.Errorf("no answer within %v: %w", d, err)
	}
	return err
}

// Tools are the server's tools as the agent's.
func (c *Client) Tools() []tool.Tool { return c.tools }

// Close ends the session (and stops a server it started).
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.session.Close() })
	return err
}

type remoteTool struct {
	c    *Client
	spec tool.Spec
}

func (c *Client) wrap(t *mcp.Tool) (tool.Tool, error) {
	in, err := json.Marshal(t.InputSchema)
	if err != nil || !json.Valid(in) || string(in) == "null" {
		in = json.RawMessage(`{"type":"object"}`)
	}
	readOnly := t.Annotations != nil && t.Annotations.ReadOnlyHint
	return &remoteTool{c: c, spec: tool.Spec{
		Name: t.Name, Description: t.Description, InputSchema: in,
		Effect: c.cfg.Effect(t.Name, readOnly), Source: "mcp:" + c.cfg.Name,
	}}, nil
}

func (t *remoteTool) Spec() tool.Spec { return t.spec }

// Call runs the tool on the server; a tool error comes back as a wire
// error the model can read, a hung server as a timeout.
func (t *remoteTool) Call(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, t.c.cfg.Timeout)
	defer cancel()
	res, err := t.c.session.CallTool(ctx, &mcp.CallToolParams{Name: t.spec.Name, Arguments: args})
	if err != nil {
		if ctx.Err() != nil {
			return nil, &wire.Error{Code: wire.CodeTimeout, Message: fmt.Sprintf("MCP server %s did not answer %s within %v", t.c.cfg.Name, t.spec.Name, t.c.cfg.Timeout), Retryable: true}
		}
		return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("MCP server %s: %s: %v", t.c.cfg.Name, t.spec.Name, err), Retryable: true}
	}
	text := ""
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text += tc.Text
		}
	}
	if res.IsError {
		return nil, &wire.Error{Code: wire.CodeInternal, Message: fmt.Sprintf("MCP server %s: %s failed: %.2000s", t.c.cfg.Name, t.spec.Name, text)}
	}
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err == nil {
			return b, nil
		}
	}
	b, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return nil, errors.New("encode MCP result")
	}
	return b, nil
}
