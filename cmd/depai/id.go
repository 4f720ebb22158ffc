package main

import (
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

	"github.com/spf13/cobra"

	"github.com/depai/depai/agent/identity"
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
		Short: "Show and export agents' identities (did:key, NATS nkey)",
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

// idCard is what `depai id` prints about one key.
type idCard struct {
	Agent string `json:"agent"`
	DID   string `json:"did"`
	NKey  string `json:"nkey"`
	Path  string `json:"path"`
	Seed  string `json:"seed,omitempty"` // NATS user seed, with --secret only
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
	cmd := &cobra.Command{
		Use:   "show [AGENT]",
		Short: "Print the did:key and nkey of one agent, or of every agent in the data directory",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
				cards = append(cards, c)
			}
			return printCards(cmd.OutOrStdout(), asJSON, cards, []string{"AGENT", "DID", "NKEY"},
				func(c idCard) []string { return []string{c.Agent, c.DID, c.NKey} })
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per agent")
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
