package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/spf13/cobra"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/wallet"
)

// newWalletCmd is `depai wallet`: agents' EVM wallets and the identities
// their keys give them on peaq and IoTeX.
func newWalletCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "wallet",
		Short: "Show agents' EVM wallets and their peaq and IoTeX identities",
		Long: `An agent with wallet: in its config has a secp256k1 key in
DATA/identity/NAME.evm.json (a v3 keystore, mode 0600), created on its first
start. Its address is its account on every EVM chain, its did:peaq on peaq
(chain 3338), and its io1… address and did:io on IoTeX (4689, testnet 4690).
Showing them needs no passphrase: the keystore keeps the address in clear.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", "", "data directory; keys are DIR/identity/NAME.evm.json")
	cmd.AddCommand(walletShowCmd(func() string { return dataDir(data, "") }))
	return cmd
}

// walletCard is what `depai wallet show` prints about one agent.
type walletCard struct {
	Agent   string `json:"agent"`
	Address string `json:"address"`
	PeaqDID string `json:"peaq_did"`
	IoTeX   string `json:"iotex"`
	IoDID   string `json:"ioid_did"`
	Path    string `json:"path"`
}

func loadWalletCard(dataDir, agentName string) (walletCard, error) {
	path := agent.WalletKeyPath(dataDir, agentName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return walletCard{}, fmt.Errorf("no wallet key for agent %q at %s (depai run creates it for an agent with wallet: in its config; pass its data directory with --data)", agentName, path)
	}
	if err != nil {
		return walletCard{}, err
	}
	var ks struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(b, &ks); err != nil || !common.IsHexAddress(ks.Address) {
		return walletCard{}, fmt.Errorf("%s is not a v3 keystore with an address (%v)", path, err)
	}
	a := common.HexToAddress(ks.Address)
	return walletCard{Agent: agentName, Address: a.Hex(), PeaqDID: wallet.PeaqDID(a), IoTeX: wallet.IoTeXAddress(a), IoDID: wallet.IoDID(a), Path: path}, nil
}

func walletShowCmd(dataDir func() string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [AGENT]",
		Short: "Print the EVM address, did:peaq, io1 address and did:io of one agent, or of every agent with a wallet",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names := args
			if len(names) == 0 {
				dir := filepath.Join(dataDir(), identity.KeyDir)
				entries, err := os.ReadDir(dir)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				for _, e := range entries {
					if n, ok := strings.CutSuffix(e.Name(), ".evm.json"); ok && e.Type().IsRegular() {
						names = append(names, n)
					}
				}
				if len(names) == 0 {
					return fmt.Errorf("no wallets in %s (depai run creates one for each agent with wallet: in its config; pass its data directory with --data)", dir)
				}
				slices.Sort(names)
			}
			out := cmd.OutOrStdout()
			var cards []walletCard
			for _, n := range names {
				c, err := loadWalletCard(dataDir(), n)
				if err != nil {
					return err
				}
				cards = append(cards, c)
			}
			return printCards(out, asJSON, cards, []string{"AGENT", "ADDRESS", "PEAQ DID", "IOTEX", "IOID DID"},
				func(c walletCard) []string { return []string{c.Agent, c.Address, c.PeaqDID, c.IoTeX, c.IoDID} })
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per agent")
	return cmd
}
