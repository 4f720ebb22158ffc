package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/spf13/cobra"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/wallet/onchain"
)

// passphraseEnv names the variable holding the passphrase that seals agents'
// key files. It is read here, never by the identity package.
const passphraseEnv = "DEPAI_KEY_PASSPHRASE"

// newIDCmd is `depai id`: show and export agents' identities (did:key and
// NATS nkey) from a data directory's DATA/identity.
func newIDCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Show and export agents' identities (did:key, NATS nkey, EVM, did:peaq, did:io)",
		Long: `Each agent's Ed25519 key lives in DATA/identity/NAME.key (mode 0600), created
by depai run on the agent's first start. Its did:key signs the agent's fleet
messages and its nkey is the agent's NATS user. A key sealed with a passphrase
is opened with $` + passphraseEnv + `.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", "", "data directory; keys are DIR/identity/NAME.key")
	dir := func() string { return dataDir(data, "") }
	cmd.AddCommand(idShowCmd(dir), idExportCmd(dir), idNewCmd(dir))
	return cmd
}

// idCard is what `depai id` prints about one agent: its did:key and nkey,
// and — when it has a wallet key — its EVM address, did:peaq and did:io,
// each with whether it is registered on chain (known with --config).
type idCard struct {
	Agent   string `json:"agent"`
	DID     string `json:"did"`
	NKey    string `json:"nkey"`
	Path    string `json:"path"`
	Seed    string `json:"seed,omitempty"` // NATS user seed, with --secret only
	EVM     string `json:"evm,omitempty"`
	PeaqDID string `json:"peaq_did,omitempty"`
	IoDID   string `json:"ioid_did,omitempty"`
	// Peaq and IoID say whether the DID is registered on chain:
	// "registered", "not registered", "not configured" (the agent's
	// wallet.identities does not name it), "unknown: why"; empty without
	// --config.
	Peaq string `json:"peaq,omitempty"`
	IoID string `json:"ioid,omitempty"`
}

// addWallet fills in the EVM identities of c's agent from its wallet key, if
// it has one (the keystore keeps the address in clear: no passphrase).
func (c *idCard) addWallet(dataDir string) {
	w, err := loadWalletCard(dataDir, c.Agent)
	if err != nil {
		return
	}
	c.EVM, c.PeaqDID, c.IoDID = w.Address, w.PeaqDID, w.IoDID
}

// chainTimeout bounds reading an agent's identities from its node.
const chainTimeout = 10 * time.Second

// addChain asks the agent's node (wallet.rpc in its config) whether its
// did:peaq and did:io are registered.
func (c *idCard) addChain(ctx context.Context, a *config.Agent) {
	if c.EVM == "" {
		return
	}
	c.Peaq, c.IoID = "not configured", "not configured"
	if a == nil || a.Wallet == nil || a.Wallet.Identities == nil {
		return
	}
	ids := a.Wallet.Identities
	ctx, cancel := context.WithTimeout(ctx, chainTimeout)
	defer cancel()
	unknown := func(err error) {
		if ids.Peaq != nil {
			c.Peaq = "unknown: " + err.Error()
		}
		if ids.IoID != nil {
			c.IoID = "unknown: " + err.Error()
		}
	}
	ec, err := ethclient.DialContext(ctx, a.Wallet.RPC)
	if err != nil {
		unknown(err)
		return
	}
	defer ec.Close()
	if id, err := ec.ChainID(ctx); err != nil || id.Uint64() != uint64(a.Wallet.ChainID) {
		unknown(fmt.Errorf("%s reports chain id %v (%v), the config says %d", a.Wallet.RPC, id, err, a.Wallet.ChainID))
		return
	}
	state := func(err error) string {
		switch {
		case err == nil:
			return "registered"
		case errors.Is(err, onchain.ErrNotFound):
			return "not registered"
		}
		return "unknown: " + err.Error()
	}
	addr := common.HexToAddress(c.EVM)
	if pq := ids.Peaq; pq != nil {
		contract, name := agent.PeaqTarget(pq)
		_, err := onchain.PeaqRead(ctx, ec, contract, addr, name)
		c.Peaq = state(err)
	}
	if io := ids.IoID; io != nil {
		_, err := onchain.ResolveIoID(ctx, ec, common.HexToAddress(io.Registry), c.IoDID)
		c.IoID = state(err)
	}
}

func loadCard(dataDir, agent string) (idCard, *identity.Identity, error) {
	path, err := identity.KeyPath(dataDir, agent)
	if err != nil {
		return idCard{}, nil, err
	}
	var pass []byte
	if p, ok := os.LookupEnv(passphraseEnv); ok {
		pass = []byte(p)
	}
	id, err := identity.Load(identity.Config{Path: path, Passphrase: pass})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return idCard{}, nil, fmt.Errorf("no key for agent %q at %s (depai run creates it on the agent's first start; pass its data directory with --data)", agent, path)
	case errors.Is(err, identity.ErrSealed):
		return idCard{}, nil, fmt.Errorf("%s is sealed: set $%s to its passphrase", path, passphraseEnv)
	case err != nil:
		return idCard{}, nil, err
	}
	return idCard{Agent: agent, DID: id.DID(), NKey: id.NKey(), Path: path}, id, nil
}

// agentsWithKeys lists the agents that have a key in the data directory.
func agentsWithKeys(dataDir string) ([]string, error) {
	dir := filepath.Join(dataDir, identity.KeyDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no identities in %s (depai run creates them; pass its data directory with --data)", dir)
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".key"); ok && e.Type().IsRegular() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func idShowCmd(dataDir func() string) *cobra.Command {
	var asJSON bool
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "show [AGENT]",
		Short: "Print every identity of one agent, or of every agent in the data directory: did:key, nkey, EVM address, did:peaq, did:io",
		Long: `Print each agent's identities: its did:key and NATS nkey, and, for an agent
with a wallet key, its EVM address, did:peaq and did:io. With --config FILE
the agent's node (wallet.rpc) is asked whether the did:peaq (peaq's DID
precompile) and the did:io (the ioIDRegistry) that wallet.identities names
are registered on chain.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var file *config.File
			if cfgPath != "" {
				var err error
				if file, err = config.Load(cfgPath); err != nil {
					return err
				}
			}
			names := args
			if len(names) == 0 {
				var err error
				if names, err = agentsWithKeys(dataDir()); err != nil {
					return err
				}
			}
			cards := make([]idCard, 0, len(names))
			for _, n := range names {
				c, _, err := loadCard(dataDir(), n)
				if err != nil {
					return err
				}
				c.addWallet(dataDir())
				if file != nil {
					var ac *config.Agent
					for i := range file.Agents {
						if file.Agents[i].Name == n {
							ac = &file.Agents[i]
						}
					}
					c.addChain(cmd.Context(), ac)
				}
				cards = append(cards, c)
			}
			on := func(did, state string) string {
				if did == "" {
					return "-"
				}
				if state == "" {
					return did
				}
				return did + " (" + state + ")"
			}
			return printCards(cmd.OutOrStdout(), asJSON, cards, []string{"AGENT", "DID", "NKEY", "EVM", "DID:PEAQ", "DID:IO"},
				func(c idCard) []string {
					return []string{c.Agent, c.DID, c.NKey, cmp.Or(c.EVM, "-"), on(c.PeaqDID, c.Peaq), on(c.IoDID, c.IoID)}
				})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per agent")
	cmd.Flags().StringVar(&cfgPath, "config", "", "the agents' config file: ask their nodes whether their did:peaq and did:io are registered")
	return cmd
}

func idExportCmd(dataDir func() string) *cobra.Command {
	var secret bool
	cmd := &cobra.Command{
		Use:   "export AGENT",
		Short: "Print an agent's identity as JSON; --secret adds its NATS user seed",
		Long: `Print an agent's identity as JSON: agent, did, nkey and key file path. With
--secret the output also holds the private key as a NATS user seed (SU…), for
a backup or for NATS tools: treat it as the secret it is.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, err := loadCard(dataDir(), args[0])
			if err != nil {
				return err
			}
			if secret {
				seed, err := id.Seed()
				if err != nil {
					return err
				}
				c.Seed = string(seed)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(c)
		},
	}
	cmd.Flags().BoolVar(&secret, "secret", false, "include the private key (NATS user seed)")
	return cmd
}

// printCards writes one JSON object per card, or a table with header and
// one row per card.
func printCards[C any](out io.Writer, asJSON bool, cards []C, header []string, row func(C) []string) error {
	if asJSON {
		enc := json.NewEncoder(out)
		for _, c := range cards {
			if err := enc.Encode(c); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, c := range cards {
		fmt.Fprintln(tw, strings.Join(row(c), "\t"))
	}
	return tw.Flush()
}
