package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/policy"
)

func balance(t *testing.T, node *testchain.Anvil, who common.Address) int64 {
	t.Helper()
	b, err := node.Client.BalanceAt(context.Background(), who, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.Int64()
}

// freePort returns a loopback port nothing listens on (yet).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestWalletAvailableOnceTheRPCIsUp: the node is down when the agent starts;
// payments are refused with the reason (and the refusal is on record), and once anvil starts on the
// configured port the wallet opens by itself (redial with backoff) and the
// held earnings are paid out.
func TestWalletAvailableOnceTheRPCIsUp(t *testing.T) {
	port := freePort(t)
	f, err := openWith(t, fmt.Sprintf(coOwnedFleet, 3338, fmt.Sprintf("http://127.0.0.1:%d", port)), agent.Options{Wallets: fastWallets})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.WalletAddress("rover"); ok || err == nil || !strings.Contains(err.Error(), "connect") && !strings.Contains(err.Error(), "refused") {
		t.Fatalf("wallet with its node down: ok=%v err=%v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Earn(ctx, "rover", "sale-1", big.NewInt(100), "x402"); err == nil {
		t.Fatal("a payout with the node down reported success")
	}
	rover, _ := f.Agent("rover")
	evs := events(t, rover, agent.Input{Text: "/audit 20"})
	if b, _ := json.Marshal(evs[len(evs)-1].Data); !strings.Contains(string(b), `"action":"earnings.payout"`) || !strings.Contains(string(b), `"decision":"deny"`) || !strings.Contains(string(b), `"rule":"wallet"`) {
		t.Fatalf("the payout refused with the wallet down is not on record: %s", b)
	}
	node := testchain.StartAnvilPort(t, 3338, port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok, _ := f.WalletAddress("rover"); ok {
			break
		}
		if time.Now().After(deadline) {
			_, _, err := f.WalletAddress("rover")
			t.Fatalf("the wallet did not open after its node came up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	addr, _, _ := f.WalletAddress("rover")
	node.Fund(t, testchain.Ether(1), addr)
	// The round fixed while the node was down is finished, once.
	if _, err := f.PayoutNow(ctx, "rover"); err != nil {
		t.Fatal(err)
	}
	if a, d := balance(t, node, alice), balance(t, node, treasury); a != 75 || d != 25 {
		t.Fatalf("alice %d, dao %d; want 75 and 25", a, d)
	}
}

// TestPayoutBlockedByStop: under /stop an earnings payout is refused by the
// policy (nothing moves, the refusal is audited); after /resume the same
// round is paid, once.
func TestPayoutBlockedByStop(t *testing.T) {
	node, f := coOwnedRover(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op := policy.Principal{Kind: policy.PrincipalOperator, ID: "ops", Role: policy.RoleAdmin}
	if err := f.Policy().Stop(ctx, op, "test"); err != nil {
		t.Fatal(err)
	}
	if err := f.Earn(ctx, "rover", "sale-1", big.NewInt(100), "x402"); err == nil || !strings.Contains(err.Error(), "stop") {
		t.Fatalf("payout under /stop: %v", err)
	}
	if a, d := balance(t, node, alice), balance(t, node, treasury); a != 0 || d != 0 {
		t.Fatalf("money moved under /stop: alice %d, dao %d", a, d)
	}
	rover, _ := f.Agent("rover")
	if ev := earningsEvent(t, f); !strings.Contains(ev.Text, "paying 100") {
		t.Fatalf("/earnings under /stop: %s", ev.Text)
	}
	evs := events(t, rover, agent.Input{Text: "/audit 20"})
	if b, _ := json.Marshal(evs[len(evs)-1].Data); !strings.Contains(string(b), `"action":"earnings.payout"`) || !strings.Contains(string(b), `"decision":"deny"`) {
		t.Fatalf("the refused payout is not on record: %s", b)
	}
	if err := f.Policy().Resume(ctx, op); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PayoutNow(ctx, "rover"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PayoutNow(ctx, "rover"); err != nil {
		t.Fatal(err)
	}
	if a, d := balance(t, node, alice), balance(t, node, treasury); a != 75 || d != 25 {
		t.Fatalf("after /resume: alice %d, dao %d; want 75 and 25", a, d)
	}
}

const scheduledFleet = `
name: rover
wallet:
  chain_id: 3338
  rpc: %s
  earnings:
    asset: native
    every: 1s
    owners: [{name: alice, payee: "0x00000000000000000000000000000000000000a1", weight: 3}]
    treasury: {name: dao, payee: "0x00000000000000000000000000000000000000d0", weight: 1}
safety:
  spend:
    payees: ["0x00000000000000000000000000000000000000a1", "0x00000000000000000000000000000000000000d0"]
    limits: [{chain: 3338, asset: native, per_payment: 1000, per_hour: 10000, per_day: 100000}]
`

// TestScheduledPayout: with earnings.every and no threshold, what is held is
// paid out by share on the schedule, on anvil.
func TestScheduledPayout(t *testing.T) {
	node := testchain.StartAnvil(t, 3338)
	f, err := openWith(t, fmt.Sprintf(scheduledFleet, node.URL), agent.Options{Wallets: fastWallets})
	if err != nil {
		t.Fatal(err)
	}
	addr, ok, err := f.WalletAddress("rover")
	if !ok {
		t.Fatal(err)
	}
	node.Fund(t, testchain.Ether(1), addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Earn(ctx, "rover", "task-1", big.NewInt(40), "task payment"); err != nil {
		t.Fatal(err)
	}
	if a := balance(t, node, alice); a != 0 {
		t.Fatalf("paid before the schedule: alice %d", a)
	}
	deadline := time.Now().Add(15 * time.Second)
	for balance(t, node, alice) != 30 || balance(t, node, treasury) != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled payout: alice %d, dao %d", balance(t, node, alice), balance(t, node, treasury))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The second transfer is on chain a moment before its receipt is in the
	// earnings journal: /earnings says "paying 10" until then.
	for {
		ev := earningsEvent(t, f)
		if strings.Contains(ev.Text, "every 1s") && strings.Contains(ev.Text, "paid out 40") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/earnings: %s", ev.Text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
