// Package testchain starts the local chains the wallet's tests run against —
// anvil (npm @foundry-rs/anvil-linux-amd64, a real EVM node, on 127.0.0.1)
// and go-ethereum's in-process simulated backend — and deploys the EIP-3009
// test token compiled from agent/wallet/testdata/EIP3009Token.sol.
package testchain

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/rpc"
)

// Token is the parsed ABI of the test token.
var Token = func() abi.ABI {
	a, err := abi.JSON(strings.NewReader(TokenABI))
	if err != nil {
		panic(err) // generated constant
	}
	return a
}()

// Tool finds an npm-installed tool: $envVar, then scripts/test's cache
// (~/.cache/depai/npm/node_modules/.bin), then PATH. If it is missing the
// test is skipped, unless DEPAI_REQUIRE_TOOLS=1 (set by scripts/test), where
// it fails.
func Tool(t testing.TB, name, envVar string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "depai", "npm", "node_modules", ".bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Missing(t, fmt.Sprintf("%s not installed (scripts/test installs it with npm; or set %s)", name, envVar))
	return ""
}

// Missing skips the test for want of what msg names, unless
// DEPAI_REQUIRE_TOOLS=1 (set by scripts/test), where it fails: in CI a tool
// scripts/test should have installed is a failure, not a skip.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("DEPAI_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Anvil is a running anvil node.
type Anvil struct {
	URL     string
	ChainID uint64
	Client  *ethclient.Client
	RPC     *rpc.Client
	cmd     *exec.Cmd
}

var listening = regexp.MustCompile(`Listening on (127\.0\.0\.1:\d+)`)

// StartAnvil starts anvil on 127.0.0.1 (an ephemeral port) with no dev
// accounts; Fund gives keys ether. It is stopped by PID when the test ends.
func StartAnvil(t testing.TB, chainID uint64, args ...string) *Anvil {
	t.Helper()
	return StartAnvilPort(t, chainID, 0, args...)
}

// StartAnvilPort is StartAnvil on a given port of 127.0.0.1 (0: any), for
// a node that starts after its clients were configured.
func StartAnvilPort(t testing.TB, chainID uint64, port int, args ...string) *Anvil {
	t.Helper()
	bin := Tool(t, "anvil", "DEPAI_ANVIL")
	cmd := exec.Command(bin, append([]string{"--host", "127.0.0.1", "--port", fmt.Sprint(port), "--chain-id", fmt.Sprint(chainID), "--accounts", "0"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start anvil: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var a *Anvil
	select {
	case hp := <-addr:
		a = &Anvil{URL: "http://" + hp, ChainID: chainID, cmd: cmd}
	case <-time.After(30 * time.Second):
		t.Fatal("anvil did not report its address within 30 s")
	}
	rc, err := rpc.Dial(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	a.RPC, a.Client = rc, ethclient.NewClient(rc)
	t.Cleanup(a.Client.Close)
	return a
}

// PID is anvil's process id.
func (a *Anvil) PID() int { return a.cmd.Process.Pid }

// Fund sets each address's balance to wei.
func (a *Anvil) Fund(t testing.TB, wei *big.Int, addrs ...common.Address) {
	t.Helper()
	for _, ad := range addrs {
		if err := a.RPC.Call(nil, "anvil_setBalance", ad, (*hexutil.Big)(wei)); err != nil {
			t.Fatalf("anvil_setBalance: %v", err)
		}
	}
}

// Mine mines n blocks.
func (a *Anvil) Mine(t testing.TB, n int) {
	t.Helper()
	if err := a.RPC.Call(nil, "anvil_mine", hexutil.Uint64(n)); err != nil {
		t.Fatalf("anvil_mine: %v", err)
	}
}

// NewKey returns a fresh random private key.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Simulated starts go-ethereum's in-process simulated chain (chain id 1337)
// with each key's address holding 1000 ether.
func Simulated(t testing.TB, keys ...*ecdsa.PrivateKey) *simulated.Backend {
	t.Helper()
	alloc := types.GenesisAlloc{}
	for _, k := range keys {
		alloc[crypto.PubkeyToAddress(k.PublicKey)] = types.Account{Balance: Ether(1000)}
	}
	b := simulated.NewBackend(alloc)
	t.Cleanup(func() { b.Close() })
	return b
}

// SimulatedChainID is the simulated backend's chain id.
const SimulatedChainID = 1337

// Ether returns n ether in wei.
func Ether(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }

// Backend is what deploying and minting need.
type Backend interface {
	bind
	ChainID(ctx context.Context) (*big.Int, error)
}

type bind interface {
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	SuggestGasPrice(ctx context.Context) (*big.Int, error)
	EstimateGas(ctx context.Context, call ethereum.CallMsg) (uint64, error)
	SendTransaction(ctx context.Context, tx *types.Transaction) error
	TransactionReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error)
}

// Transact sends a transaction from key (to nil deploys) and waits for its
// receipt; commit, if not nil, mines a block (the simulated backend).
func Transact(t testing.TB, b Backend, commit func(), key *ecdsa.PrivateKey, to *common.Address, data []byte) *types.Receipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from := crypto.PubkeyToAddress(key.PublicKey)
	id, err := b.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nonce, err := b.PendingNonceAt(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	price, err := b.SuggestGasPrice(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gas, err := b.EstimateGas(ctx, ethereum.CallMsg{From: from, To: to, Data: data})
	if err != nil {
		t.Fatalf("estimate gas: %v", err)
	}
	tx, err := types.SignTx(types.NewTx(&types.LegacyTx{Nonce: nonce, GasPrice: new(big.Int).Mul(price, big.NewInt(2)), Gas: gas * 2, To: to, Data: data}), types.LatestSignerForChainID(id), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SendTransaction(ctx, tx); err != nil {
		t.Fatalf("send: %v", err)
	}
	for {
		if commit != nil {
			commit()
		}
		r, err := b.TransactionReceipt(ctx, tx.Hash())
		if err == nil {
			if r.Status != types.ReceiptStatusSuccessful {
				t.Fatalf("transaction %s reverted", tx.Hash())
			}
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no receipt for %s: %v", tx.Hash(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// DeployToken deploys the EIP-3009 test token with EIP-712 domain name and
// version "2" and returns its address.
func DeployToken(t testing.TB, b Backend, commit func(), key *ecdsa.PrivateKey, name string) common.Address {
	t.Helper()
	args, err := Token.Pack("", name, "2", "TST")
	if err != nil {
		t.Fatal(err)
	}
	r := Transact(t, b, commit, key, nil, append(common.FromHex(TokenBin), args...))
	return r.ContractAddress
}

// Mint mints amount of the token to who.
func Mint(t testing.TB, b Backend, commit func(), key *ecdsa.PrivateKey, token, who common.Address, amount *big.Int) {
	t.Helper()
	data, err := Token.Pack("mint", who, amount)
	if err != nil {
		t.Fatal(err)
	}
	Transact(t, b, commit, key, &token, data)
}

// PeaqDIDPrecompile is where peaq's DID precompile lives.
var PeaqDIDPrecompile = common.HexToAddress("0x0000000000000000000000000000000000000800")

// InstallPeaqDID deploys the DID precompile stand-in (PeaqDID.sol) from key
// and copies its runtime code to PeaqDIDPrecompile with anvil_setCode, so
// that calls to the precompile's address run it.
func (a *Anvil) InstallPeaqDID(t testing.TB, key *ecdsa.PrivateKey) {
	t.Helper()
	r := Transact(t, a.Client, nil, key, nil, common.FromHex(PeaqDIDBin))
	code, err := a.Client.CodeAt(context.Background(), r.ContractAddress, nil)
	if err != nil || len(code) == 0 {
		t.Fatalf("runtime code of the DID stand-in: %v (%d bytes)", err, len(code))
	}
	if err := a.RPC.Call(nil, "anvil_setCode", PeaqDIDPrecompile, hexutil.Bytes(code)); err != nil {
		t.Fatalf("anvil_setCode: %v", err)
	}
}

// DeployIoIDRegistry deploys the ioIDRegistry stand-in (IoIDRegistry.sol)
// from key and returns its address.
func DeployIoIDRegistry(t testing.TB, b Backend, commit func(), key *ecdsa.PrivateKey) common.Address {
	t.Helper()
	return Transact(t, b, commit, key, nil, common.FromHex(IoIDRegistryBin)).ContractAddress
}
