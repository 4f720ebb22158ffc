package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/wallet"
)

func walletCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newWalletCmd()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestWalletShow: a sealed key's identities are shown without its
// passphrase; the IoTeX form is IoTeX's documented example.
func TestWalletShow(t *testing.T) {
	data := t.TempDir()
	if _, err := walletCLI(t, "show", "--data", data); err == nil || !strings.Contains(err.Error(), "no wallets") {
		t.Fatalf("show on an empty data dir: %v", err)
	}
	path := agent.WalletKeyPath(data, "rover")
	os.MkdirAll(filepath.Dir(path), 0o700)
	priv, _ := crypto.HexToECDSA("7fda34c8319534253619f69604ffbd43e315e319b84c03ea4f19e1a0e439a4b1")
	if _, err := wallet.ImportKey(wallet.KeyConfig{Path: path, Passphrase: "secret", LightKDF: true}, crypto.FromECDSA(priv)); err != nil {
		t.Fatal(err)
	}
	out, err := walletCLI(t, "show", "--data", data, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var c walletCard
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if c.Agent != "rover" || c.Address != "0x95E20FD5FDd9A8D9D174C7fAE7c3F9eC51BBbF36" || c.IoTeX != "io1jh3ql40amx5dn5t5claw0slea3gmh0ek8flwlp" ||
		c.PeaqDID != "did:peaq:0x95E20FD5FDd9A8D9D174C7fAE7c3F9eC51BBbF36" || c.IoDID != "did:io:0x95e20fd5fdd9a8d9d174c7fae7c3f9ec51bbbf36" {
		t.Fatalf("show: %+v", c)
	}
	if _, err := walletCLI(t, "show", "nobody", "--data", data); err == nil || !strings.Contains(err.Error(), `no wallet key for agent "nobody"`) {
		t.Fatalf("show of an agent without a wallet: %v", err)
	}
}
