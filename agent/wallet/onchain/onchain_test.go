package onchain_test

import (
	"bytes"
	"context"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/onchain"
)

// These tests run against stand-in contracts on anvil (PeaqDID.sol at the
// precompile's address, IoIDRegistry.sol) whose ABIs are the real ones: they
// check depai's encoding, decoding and signatures, not peaq's or IoTeX's
// semantics (see the contracts' comments for what they leave out).

func openWallet(t *testing.T, node *testchain.Anvil) (*wallet.Client, *wallet.Key) {
	t.Helper()
	key, err := wallet.ImportKey(wallet.KeyConfig{Path: filepath.Join(t.TempDir(), "evm.json")}, crypto.FromECDSA(testchain.NewKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	node.Fund(t, testchain.Ether(1), key.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wallet.Open(ctx, wallet.Config{ChainID: node.ChainID, RPC: node.URL, Signer: key, Journal: filepath.Join(t.TempDir(), "j"), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, key
}

func TestPeaqDIDAttributesOnAnvil(t *testing.T) {
	node := testchain.StartAnvil(t, wallet.ChainPeaq)
	deployer := testchain.NewKey(t)
	node.Fund(t, testchain.Ether(1), crypto.PubkeyToAddress(deployer.PublicKey))
	node.InstallPeaqDID(t, deployer)
	w, key := openWallet(t, node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	me, name := key.Address(), []byte("depai")

	if _, err := onchain.PeaqRead(ctx, node.Client, onchain.PeaqDIDPrecompile, me, name); !errors.Is(err, onchain.ErrNotFound) {
		t.Fatalf("read before add: %v, want ErrNotFound", err)
	}
	doc := onchain.Document(wallet.PeaqDID(me), key.PublicKey())
	data, err := onchain.PeaqAdd(me, name, doc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Send(ctx, wallet.Call{Key: "add", To: onchain.PeaqDIDPrecompile, Data: data}); err != nil {
		t.Fatal(err)
	}
	a, err := onchain.PeaqRead(ctx, node.Client, onchain.PeaqDIDPrecompile, me, name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Name, name) || !bytes.Equal(a.Value, doc) || a.Created.Sign() == 0 {
		t.Fatalf("attribute read back = %q %q %v", a.Name, a.Value, a.Created)
	}
	// A second add of the same name reverts in the estimate: nothing is sent.
	if _, err := w.Send(ctx, wallet.Call{Key: "add-again", To: onchain.PeaqDIDPrecompile, Data: data}); !errors.Is(err, wallet.ErrNotSent) || !strings.Contains(err.Error(), "AttributeAlreadyExist") {
		t.Fatalf("second add: %v", err)
	}
	data, _ = onchain.PeaqUpdate(me, name, []byte("v2"), 100)
	if _, err := w.Send(ctx, wallet.Call{Key: "update", To: onchain.PeaqDIDPrecompile, Data: data}); err != nil {
		t.Fatal(err)
	}
	if a, err = onchain.PeaqRead(ctx, node.Client, onchain.PeaqDIDPrecompile, me, name); err != nil || string(a.Value) != "v2" || a.Validity == ^uint32(0) {
		t.Fatalf("after update: %+v %v", a, err)
	}
	data, _ = onchain.PeaqRemove(me, name)
	if _, err := w.Send(ctx, wallet.Call{Key: "remove", To: onchain.PeaqDIDPrecompile, Data: data}); err != nil {
		t.Fatal(err)
	}
	if _, err := onchain.PeaqRead(ctx, node.Client, onchain.PeaqDIDPrecompile, me, name); !errors.Is(err, onchain.ErrNotFound) {
		t.Fatalf("read after remove: %v", err)
	}
}

func TestIoIDRegisterAndResolveOnAnvil(t *testing.T) {
	node := testchain.StartAnvil(t, wallet.ChainIoTeXTestnet)
	deployer := testchain.NewKey(t)
	node.Fund(t, testchain.Ether(1), crypto.PubkeyToAddress(deployer.PublicKey))
	registry := testchain.DeployIoIDRegistry(t, node.Client, nil, deployer)
	w, key := openWallet(t, node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	did := wallet.IoDID(key.Address())
	if _, err := onchain.ResolveIoID(ctx, node.Client, registry, did); !errors.Is(err, onchain.ErrNotFound) {
		t.Fatalf("resolve before register: %v", err)
	}
	doc := onchain.Document(did, key.PublicKey())
	reg := onchain.IoIDRegistration{ChainID: node.ChainID, Registry: registry, DeviceNFT: common.Address{0x4e}, TokenID: big.NewInt(7), Hash: onchain.DocumentHash(doc), URI: "https://example.invalid/did.json"}

	// Signed by another key: the registry's ecrecover refuses it.
	other, _ := wallet.ImportKey(wallet.KeyConfig{Path: filepath.Join(t.TempDir(), "o.json")}, crypto.FromECDSA(testchain.NewKey(t)))
	bad, err := onchain.IoIDRegister(ctx, node.Client, other, reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Send(ctx, wallet.Call{Key: "bad", To: registry, Data: bad}); !errors.Is(err, wallet.ErrNotSent) || !strings.Contains(err.Error(), "invalid signature") {
		t.Fatalf("register signed by another device: %v", err)
	}

	data, err := onchain.IoIDRegister(ctx, node.Client, key, reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Send(ctx, wallet.Call{Key: "register", To: registry, Data: data}); err != nil {
		t.Fatal(err)
	}
	d, err := onchain.ResolveIoID(ctx, node.Client, registry, did)
	if err != nil {
		t.Fatal(err)
	}
	if d.DID != did || d.Hash != reg.Hash || d.URI != reg.URI || d.TokenID.Int64() != 7 {
		t.Fatalf("resolved %+v, want %s %s %s 7", d, did, reg.Hash, reg.URI)
	}
	// A new document: update with the next nonce.
	reg.Hash, reg.URI = onchain.DocumentHash([]byte("v2")), "https://example.invalid/v2.json"
	if data, err = onchain.IoIDUpdate(ctx, node.Client, key, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Send(ctx, wallet.Call{Key: "update", To: registry, Data: data}); err != nil {
		t.Fatal(err)
	}
	if d, err = onchain.ResolveIoID(ctx, node.Client, registry, did); err != nil || d.Hash != reg.Hash || d.URI != reg.URI {
		t.Fatalf("after update: %+v %v", d, err)
	}
	if _, err := onchain.ResolveIoID(ctx, node.Client, registry, "did:io:zz"); err == nil || !strings.Contains(err.Error(), "20-byte hex address") {
		t.Fatalf("malformed did: %v", err)
	}
	// A contract that is not a registry: a clear error, not a zero record.
	if _, err := onchain.ResolveIoID(ctx, node.Client, common.Address{0x99}, did); err == nil || !strings.Contains(err.Error(), "do not decode") {
		t.Fatalf("resolve at a non-registry: %v", err)
	}
}

func TestDocumentHashIsSHA256(t *testing.T) {
	key, _ := wallet.ImportKey(wallet.KeyConfig{Path: filepath.Join(t.TempDir(), "k.json")}, bytes.Repeat([]byte{1}, 32))
	doc := onchain.Document(wallet.IoDID(key.Address()), key.PublicKey())
	if !strings.Contains(string(doc), `"type":"EcdsaSecp256k1VerificationKey2019"`) || !strings.Contains(string(doc), `"publicKeyHex":"031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"`) {
		t.Fatalf("document: %s", doc)
	}
	if h := onchain.DocumentHash([]byte("abc")); h.Hex() != "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("sha256(abc) = %s", h)
	}
}

func FuzzParseDID(f *testing.F) {
	for _, s := range []string{"did:peaq:0x00000000000000000000000000000000000000a1", "did:io:0xzz", "did:key:z6Mk", "", "did:io:0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, a, err := onchain.ParseDID(s)
		if err == nil && !strings.EqualFold(s, "did:"+m+":"+a.Hex()) {
			t.Fatalf("ParseDID(%q) = %s %s", s, m, a)
		}
	})
}
