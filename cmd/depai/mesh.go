package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/mesh"
	"github.com/depai/depai/agent/operator"
)

// meshOptions let depai run's fleet join the mesh with each agent's key
// (and the node's) in DATA/identity, created on first start and sealed
// with $DEPAI_KEY_PASSPHRASE when it is set.
func meshOptions(dataDir string) *agent.MeshOptions {
	var pass []byte
	if p, ok := os.LookupEnv(passphraseEnv); ok {
		pass = []byte(p)
	}
	return &agent.MeshOptions{Keys: func(name string) (*identity.Identity, error) {
		path, err := identity.KeyPath(dataDir, name)
		if err != nil {
			return nil, err
		}
		id, _, err := identity.LoadOrCreate(identity.Config{Path: path, Passphrase: pass})
		return id, err
	}}
}

// remoteAgents lists the agents of the fleet's other nodes for the
// operator API, so that `depai chat --addr` any node reaches any agent.
func remoteAgents(f *agent.Fleet) func() []operator.Agent {
	if f.Mesh() == nil {
		return nil
	}
	return func() []operator.Agent {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rs, err := f.RemoteAgents(ctx)
		if err != nil {
			return nil
		}
		out := make([]operator.Agent, len(rs))
		for i, r := range rs {
			out[i] = r
		}
		return out
	}
}

// idNewCmd is `depai id new NAME`: create the key of an agent or node
// before its first run — a hub's config lists its leaf nodes by did:key.
func idNewCmd(dataDir func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "new NAME",
		Short: "Create the key of an agent or node (if it has none) and print its did:key",
		Long: `Create DATA/identity/NAME.key (mode 0600) unless it exists, and print its did:key.
A hub admits leaf nodes by did:key (mesh.leaf_nodes), so create the leaf
node's key first: its name is the leaf config's mesh.name. The key is sealed
with $` + passphraseEnv + ` when that is set.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := mesh.CheckName(args[0]); err != nil {
				return err
			}
			id, err := meshOptions(dataDir()).Keys(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id.DID())
			return nil
		},
	}
}
