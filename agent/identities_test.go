package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/onchain"
)

// idFleet registers the agent's did:peaq and did:io at start. The spend
// policy's payees are %s: registration gas is a payment to the contract.
const idFleet = `
name: rover
wallet:
  chain_id: 3338
  rpc: %s
  identities:
    register: true
    peaq: {}
    ioid: {registry: "%s", device_nft: "0x00000000000000000000000000000000000000fe", token_id: 9, uri: "https://example.invalid/rover.json"}
safety:
  spend:
    payees: [%s]
    limits: [{chain: 3338, asset: native, per_payment: 100000000000000000, per_hour: 1000000000000000000, per_day: 1000000000000000000}]
`

// The chain side is the stand-in contracts (PeaqDID.sol at the precompile's
// address, IoIDRegistry.sol) on anvil: these tests check that the core
// registers through the policy with the real ABIs, not the chains'
// semantics.
func identityChain(t *testing.T) (*testchain.Anvil, string) {
	t.Helper()
	node := testchain.StartAnvil(t, 3338)
	deployer := testchain.NewKey(t)
	node.Fund(t, testchain.Ether(1), crypto.PubkeyToAddress(deployer.PublicKey))
	node.InstallPeaqDID(t, deployer)
	return node, testchain.DeployIoIDRegistry(t, node.Client, nil, deployer).Hex()
}

func fundedKey(t *testing.T, node *testchain.Anvil, data string) *wallet.Key {
	t.Helper()
	key, err := wallet.ImportKey(wallet.KeyConfig{Path: agent.WalletKeyPath(data, "rover")}, crypto.FromECDSA(testchain.NewKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	node.Fund(t, testchain.Ether(1), key.Address())
	return key
}

// TestIdentitiesRegisteredAtStart: with register: true the agent adds its DID
// document to peaq's DID precompile and registers itself in the ioID
// registry, each through the spend policy (audited), and /identity shows
// both registered. A restart sends nothing more.
func TestIdentitiesRegisteredAtStart(t *testing.T) {
	node, registry := identityChain(t)
	data := filepath.Join(t.TempDir(), "data")
	key := fundedKey(t, node, data)
	yaml := fmt.Sprintf(idFleet, node.URL, registry, fmt.Sprintf("%q, %q", onchain.PeaqDIDPrecompile.Hex(), registry))
	f := openAt(t, data, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ids, err := f.Identities(ctx, "rover")
		if err == nil && len(ids) == 2 && ids[0].Current && ids[1].Current {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("identities not registered at start: %+v %v", ids, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d, err := onchain.ResolveIoID(ctx, node.Client, common.HexToAddress(registry), wallet.IoDID(key.Address()))
	if err != nil || d.URI != "https://example.invalid/rover.json" || d.TokenID.Int64() != 9 {
		t.Fatalf("did:io resolved to %+v %v", d, err)
	}
	a, err := onchain.PeaqRead(ctx, node.Client, onchain.PeaqDIDPrecompile, key.Address(), []byte(agent.DefaultPeaqAttribute))
	if err != nil || !strings.Contains(string(a.Value), wallet.PeaqDID(key.Address())) {
		t.Fatalf("did:peaq attribute %q %v", a.Value, err)
	}
	rover, _ := f.Agent("rover")
	if s := reply(collect(t, rover, "/identity")); !strings.Contains(s, "did:peaq:"+key.Address().Hex()) || strings.Count(s, ": registered") != 2 {
		t.Fatalf("/identity: %s", s)
	}
	evs := events(t, rover, agent.Input{Text: "/audit 50"})
	b, _ := json.Marshal(evs[len(evs)-1].Data)
	if strings.Count(string(b), `"action":"identity.register"`) < 4 { // a decision and an outcome each
		t.Fatalf("the registrations are not on record: %s", b)
	}
	f.Close(context.Background())

	f = openAt(t, data, yaml)
	defer f.Close(context.Background())
	if _, err := f.RegisterIdentities(ctx, "rover"); err != nil {
		t.Fatal(err)
	}
	if n, _ := node.Client.NonceAt(ctx, key.Address(), nil); n != 2 {
		t.Fatalf("%d transactions sent, want 2: a restart registered again", n)
	}
}

// TestIdentityRegistrationRefusedByPolicy: the contracts are not among the
// payees, so the registration gas is refused: nothing is sent, the refusal
// is audited and /identity shows not registered.
func TestIdentityRegistrationRefusedByPolicy(t *testing.T) {
	node, registry := identityChain(t)
	data := filepath.Join(t.TempDir(), "data")
	key := fundedKey(t, node, data)
	f := openAt(t, data, fmt.Sprintf(idFleet, node.URL, registry, `"0x00000000000000000000000000000000000000a1"`))
	defer f.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids, err := f.RegisterIdentities(ctx, "rover")
	if err == nil || !strings.Contains(err.Error(), "payee") || len(ids) != 2 || ids[0].Registered || ids[1].Registered {
		t.Fatalf("registration with the contracts off the allowlist: %+v %v", ids, err)
	}
	if n, _ := node.Client.NonceAt(ctx, key.Address(), nil); n != 0 {
		t.Fatalf("%d transactions sent under a refusal", n)
	}
	rover, _ := f.Agent("rover")
	if s := reply(collect(t, rover, "/identity")); strings.Count(s, "not registered") != 2 {
		t.Fatalf("/identity: %s", s)
	}
	evs := events(t, rover, agent.Input{Text: "/audit 50"})
	b, _ := json.Marshal(evs[len(evs)-1].Data)
	if !strings.Contains(string(b), `"action":"identity.register"`) || !strings.Contains(string(b), `"decision":"deny"`) {
		t.Fatalf("the refusal is not on record: %s", b)
	}
}
