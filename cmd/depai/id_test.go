package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/wallet"
)

func idCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newIDCmd()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestIDShowAndExport(t *testing.T) {
	data := t.TempDir()
	if _, err := idCLI(t, "show", "--data", data); err == nil || !strings.Contains(err.Error(), "no identities") {
		t.Fatalf("show on an empty data dir: %v", err)
	}
	var ids []*identity.Identity
	for _, name := range []string{"scout", "dispatcher"} {
		path, _ := identity.KeyPath(data, name)
		id, _, err := identity.LoadOrCreate(identity.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	out, err := idCLI(t, "show", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "dispatcher") || !strings.Contains(lines[1], ids[1].DID()) ||
		!strings.Contains(lines[2], ids[0].NKey()) {
		t.Fatalf("show:\n%s", out)
	}

	out, err = idCLI(t, "export", "scout", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	var c idCard
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.DID != ids[0].DID() || c.Seed != "" {
		t.Fatalf("export: %v\n%s", err, out)
	}
	out, err = idCLI(t, "export", "scout", "--secret", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(c.Seed))
	if err != nil {
		t.Fatalf("exported seed: %v", err)
	}
	if pub, _ := kp.PublicKey(); pub != ids[0].NKey() {
		t.Fatalf("exported seed is the key of %s, want %s", pub, ids[0].NKey())
	}
	if _, err := idCLI(t, "export", "nobody", "--data", data); err == nil || !strings.Contains(err.Error(), `no key for agent "nobody"`) {
		t.Fatalf("export of a missing agent: %v", err)
	}
}

func TestIDSealedNeedsPassphrase(t *testing.T) {
	data := t.TempDir()
	path, _ := identity.KeyPath(data, "vault")
	id, _, err := identity.LoadOrCreate(identity.Config{Path: path, Passphrase: []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(passphraseEnv, "")
	if _, err := idCLI(t, "show", "vault", "--data", data); err == nil || !strings.Contains(err.Error(), passphraseEnv) {
		t.Fatalf("show of a sealed key without a passphrase: %v", err)
	}
	t.Setenv(passphraseEnv, "pw")
	out, err := idCLI(t, "show", "vault", "--data", data, "--json")
	if err != nil || !strings.Contains(out, id.DID()) {
		t.Fatalf("show with the passphrase: %v\n%s", err, out)
	}
}

// TestIDShowListsEveryIdentity: an agent with a wallet key shows its EVM
// address, did:peaq and did:io beside its did:key; with --config the chain
// status comes from its node — here down, so "unknown" with the reason, and
// an identity the config does not name is "not configured". (The chain
// reads themselves are tested on anvil in agent/wallet/onchain.)
func TestIDShowListsEveryIdentity(t *testing.T) {
	data := t.TempDir()
	path, _ := identity.KeyPath(data, "rover")
	if _, _, err := identity.LoadOrCreate(identity.Config{Path: path}); err != nil {
		t.Fatal(err)
	}
	key, err := wallet.ImportKey(wallet.KeyConfig{Path: agent.WalletKeyPath(data, "rover")}, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "fleet.yaml")
	yaml := "name: rover\nwallet:\n  chain_id: 3338\n  rpc: http://127.0.0.1:1\n  identities: {peaq: {}}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := idCLI(t, "show", "--data", data, "--json", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c idCard
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if c.EVM != key.Address().Hex() || c.PeaqDID != wallet.PeaqDID(key.Address()) || c.IoDID != wallet.IoDID(key.Address()) ||
		!strings.HasPrefix(c.Peaq, "unknown: ") || c.IoID != "not configured" {
		t.Fatalf("card %+v", c)
	}
	out, err = idCLI(t, "show", "--data", data)
	if err != nil || !strings.Contains(out, "DID:PEAQ") || !strings.Contains(out, wallet.IoDID(key.Address())) {
		t.Fatalf("table: %v\n%s", err, out)
	}
}
