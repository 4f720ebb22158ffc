package main

import (
	"context"
	"fmt"
	"iter"
	"os"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/operator/mcpserver"
)

type apiOptions struct {
	addr      string
	data      string
	tokenFile string
}

func (o *apiOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "", "operator API address (default: what depai run wrote in the data directory, else "+config.DefaultOperatorAddr+")")
	f.StringVar(&o.data, "data", "", "data directory of the depai run to talk to")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the operator token (default: $DEPAI_TOKEN, else the data directory's)")
}

// client finds the running depai run: its address and token from the data
// directory it uses, unless --addr, --token-file or $DEPAI_TOKEN say.
func (o *apiOptions) client() (*operator.Client, error) {
	dir := dataDir(o.data, "")
	info, haveInfo, err := readRunInfo(dir)
	if err != nil {
		return nil, err
	}
	addr := o.addr
	if addr == "" {
		addr = config.DefaultOperatorAddr
		if haveInfo {
			addr = info.Addr
		}
	}
	var token string
	switch {
	case o.tokenFile != "":
		token, err = operator.ReadToken(o.tokenFile)
	case os.Getenv("DEPAI_TOKEN") != "":
		token = strings.TrimSpace(os.Getenv("DEPAI_TOKEN"))
	case haveInfo:
		token, err = operator.ReadToken(info.TokenFile)
	default:
		token, err = operator.ReadToken(tokenPath("", dir))
	}
	if err != nil {
		return nil, fmt.Errorf("%w (pass --data, --token-file or $DEPAI_TOKEN for the depai run to talk to)", err)
	}
	return operator.NewClient(addr, token), nil
}

// apiBackend is a running depai run as an MCP server's backend.
type apiBackend struct{ c *operator.Client }

func (b apiBackend) AgentNames(ctx context.Context) ([]string, error) {
	list, err := b.c.Agents(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(list))
	for i, st := range list {
		names[i] = st.Name
	}
	return names, nil
}

func (b apiBackend) Send(ctx context.Context, name, text string) iter.Seq2[agent.Event, error] {
	return b.c.Send(ctx, name, text)
}

func newMCPCmd() *cobra.Command {
	var o apiOptions
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve a running depai run's fleet to an MCP client over stdio",
		Long: `Serve the fleet of a running depai run as a Model Context Protocol server on
stdin and stdout, for MCP clients (desktop assistants, IDEs, other agents).
Each agent's tools become MCP tools named AGENT.TOOL, with AGENT.ask and
AGENT.command besides; every call passes the fleet's policy with the role of
the operator token used, and is audited. The address and token are found as
for depai chat.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			s, err := mcpserver.NewServer(cmd.Context(), apiBackend{c})
			if err != nil {
				return err
			}
			return s.Run(cmd.Context(), &mcp.StdioTransport{})
		},
	}
	o.flags(cmd)
	return cmd
}
