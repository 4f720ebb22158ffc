package operator

import (
	"context"
	"fmt"
	"iter"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/operator/mcpserver"
)

// mcpBackend is the fleet in this process, spoken to as one operator.
type mcpBackend struct {
	s  *Server
	op *credential
}

func (b mcpBackend) AgentNames(context.Context) ([]string, error) {
	names := make([]string, len(b.s.agents))
	for i, a := range b.s.agents {
		names[i] = a.Name()
	}
	return names, nil
}

func (b mcpBackend) Send(ctx context.Context, name, text string) iter.Seq2[agent.Event, error] {
	for _, a := range b.s.agents {
		if a.Name() == name {
			return a.Handle(ctx, agent.Input{Source: agent.SourceOperator, From: b.op.name, Role: b.op.role, Text: text})
		}
	}
	return func(yield func(agent.Event, error) bool) { yield(agent.Event{}, fmt.Errorf("no agent %q", name)) }
}

// mcpHandler serves MCP's Streamable HTTP transport on /mcp: each session
// gets a server over the fleet as the operator who opened it, so the
// policy sees that operator's role on every call.
func (s *Server) mcpHandler() http.Handler {
	return mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		op, _ := r.Context().Value(opKey{}).(*credential)
		if op == nil {
			return nil
		}
		srv, err := mcpserver.NewServer(r.Context(), mcpBackend{s: s, op: op})
		if err != nil {
			s.log.Warn("mcp: session not started", "operator", op.name, "err", err)
			return nil
		}
		return srv
	}, &mcp.StreamableHTTPOptions{Stateless: true})
}
