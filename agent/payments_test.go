package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/wallet"
)

var (
	alice    = common.HexToAddress("0x00000000000000000000000000000000000000a1")
	treasury = common.HexToAddress("0x00000000000000000000000000000000000000d0")
)

const coOwnedFleet = `
name: rover
wallet:
  chain_id: %d
  rpc: %s
  earnings:
    asset: native
    threshold: 100
    owners: [{name: alice, payee: "0x00000000000000000000000000000000000000a1", weight: 3}]
    treasury: {name: dao, payee: "0x00000000000000000000000000000000000000d0", weight: 1}
safety:
  spend:
    payees: ["0x00000000000000000000000000000000000000a1", "0x00000000000000000000000000000000000000d0"]
    limits: [{chain: 3338, asset: native, per_payment: 1000, per_hour: 10000, per_day: 100000}]
`

// fastWallets polls receipts every 10 ms instead of 500 ms.
func fastWallets(ctx context.Context, _ string, cfg wallet.Config) (*wallet.Client, error) {
	cfg.PollInterval = 10 * time.Millisecond
	return wallet.Open(ctx, cfg)
}

func earningsEvent(t *testing.T, f *agent.Fleet) agent.Event {
	t.Helper()
	a, err := f.Agent("rover")
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, a, agent.Input{Text: "/earnings"})
	return evs[len(evs)-1]
}

func TestEarningsWithoutWallet(t *testing.T) {
	f, err := openWith(t, "name: rover\n", agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := earningsEvent(t, f)
	if ev.Type != agent.EventError || ev.Code != agent.CodeUnavailable || !strings.Contains(ev.Error, "configure wallet: {chain_id, rpc}") {
		t.Fatalf("/earnings without a wallet: %+v", ev)
	}
}

// TestWalletOnALyingNodeFailsClosed: the config says peaq (3338), the node
// says 31337. The agent runs, its wallet does not open (it keeps dialling),
// and /earnings shows what is held and why payouts wait.
func TestWalletOnALyingNodeFailsClosed(t *testing.T) {
	node := testchain.StartAnvil(t, 31337)
	f, err := openWith(t, fmt.Sprintf(coOwnedFleet, 3338, node.URL), agent.Options{Wallets: fastWallets})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.WalletAddress("rover"); ok || err == nil || !strings.Contains(err.Error(), "reports chain id 31337") {
		t.Fatalf("wallet on a lying node: ok=%v err=%v", ok, err)
	}
	ev := earningsEvent(t, f)
	if ev.Type != agent.EventReply || !strings.Contains(ev.Text, "payouts wait") || !strings.Contains(ev.Text, "reports chain id 31337") {
		t.Fatalf("/earnings: %+v", ev)
	}
	if err := f.Earn(context.Background(), "rover", "sale-1", big.NewInt(100), "x402"); err == nil || !strings.Contains(err.Error(), "reports chain id 31337") {
		t.Fatalf("a payout on the lying node: %v", err)
	}
}

// coOwnedRover opens coOwnedFleet on a fresh anvil (chain 3338) with the
// rover's wallet funded with 1 ether.
func coOwnedRover(t *testing.T) (*testchain.Anvil, *agent.Fleet) {
	t.Helper()
	node := testchain.StartAnvil(t, 3338)
	f, err := openWith(t, fmt.Sprintf(coOwnedFleet, 3338, node.URL), agent.Options{Wallets: fastWallets})
	if err != nil {
		t.Fatal(err)
	}
	addr, ok, err := f.WalletAddress("rover")
	if !ok {
		t.Fatal(err)
	}
	node.Fund(t, testchain.Ether(1), addr)
	return node, f
}

// TestEarningsSplitToOwnersOnAnvil: a co-owned robot earns 100 wei twice;
// each time the threshold is reached the split (3:1) is paid out on anvil
// through the spend policy, and /earnings shows it.
func TestEarningsSplitToOwnersOnAnvil(t *testing.T) {
	node, f := coOwnedRover(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		if err := f.Earn(ctx, "rover", fmt.Sprintf("sale-%d", i), big.NewInt(100), "x402"); err != nil {
			t.Fatal(err)
		}
	}
	for who, want := range map[common.Address]int64{alice: 150, treasury: 50} {
		if b, err := node.Client.BalanceAt(ctx, who, nil); err != nil || b.Int64() != want {
			t.Fatalf("%s holds %v (%v), want %d", who, b, err, want)
		}
	}
	ev := earningsEvent(t, f)
	if ev.Type != agent.EventReply {
		t.Fatalf("/earnings: %+v", ev)
	}
	var got struct {
		Earnings []struct{ Owner, Share, Amount, Asset string }
		Total    string
		Asset    string
		Rounds   int
	}
	b, _ := json.Marshal(ev.Data)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Total != "200" || got.Asset != "native" || got.Rounds != 2 || len(got.Earnings) != 2 ||
		got.Earnings[0].Owner != "alice" || got.Earnings[0].Share != "3/4" || got.Earnings[0].Amount != "150" || got.Earnings[1].Amount != "50" {
		t.Fatalf("/earnings data: %s", b)
	}
}
