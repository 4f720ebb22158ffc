package earnings

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/spend"
)

var (
	alice    = common.HexToAddress("0x00000000000000000000000000000000000a11ce")
	bob      = common.HexToAddress("0x0000000000000000000000000000000000000b0b")
	treasury = common.HexToAddress("0x0000000000000000000000000000000000007ea5")
)

func config(path string, asset common.Address) Config {
	return Config{Path: path, Asset: asset, Threshold: big.NewInt(2000),
		Owners:   []Share{{Name: "alice", Payee: alice, Weight: 50}, {Name: "bob", Payee: bob, Weight: 30}},
		Treasury: Share{Name: "treasury", Payee: treasury, Weight: 20}}
}

func TestSplitRemainderToTreasury(t *testing.T) {
	s, err := Open(config(filepath.Join(t.TempDir(), "e"), common.Address{1}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := s.Split(big.NewInt(1001))
	if fmt.Sprint(got) != "[500 300 201]" {
		t.Fatalf("split of 1001 = %v, want [500 300 201]", got)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Threshold = big.NewInt(0) }, "Threshold 0 must be positive"},
		{func(c *Config) { c.Owners[1].Payee = alice }, "owners[1].payee 0x00000000000000000000000000000000000a11CE appears twice"},
		{func(c *Config) { c.Treasury.Payee = common.Address{} }, "treasury.payee is not set"},
	} {
		c := config(filepath.Join(dir, "e"), common.Address{1})
		tc.mut(&c)
		if _, err := Open(c); err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}

// policyPayer is the core's side: every payout transfer passes the spend
// policy before the wallet pays it. failAfter makes the n-th transfer fail
// (a crash stand-in) before it is sent.
type policyPayer struct {
	w         *wallet.Client
	ledger    *spend.Ledger
	policy    *spend.Policy
	calls     int
	failAfter int
}

func (p *policyPayer) Pay(ctx context.Context, t wallet.Transfer) (*wallet.Receipt, error) {
	p.calls++
	if p.failAfter > 0 && p.calls > p.failAfter {
		return nil, errors.New("agent stopped")
	}
	d, err := p.ledger.Reserve(ctx, p.policy, spend.Payment{Key: t.Key, Chain: p.w.ChainID(), Asset: t.Asset.Hex(), Payee: t.To.Hex(), Amount: t.Amount}, false)
	if err != nil {
		return nil, err
	}
	if d.Verdict != spend.Allow {
		return nil, errors.New(d.String())
	}
	r, err := p.w.Pay(ctx, t)
	if err != nil {
		return r, err
	}
	return r, p.ledger.Commit(ctx, t.Key, r.TxHash.Hex())
}

// TestRobotEarningsSplitOnAnvil: a robot earns in a token, pays its owners
// and treasury by share once the threshold is reached, survives a stop in
// the middle of a round without paying anyone twice, and keeps under its
// spend policy.
func TestRobotEarningsSplitOnAnvil(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := testchain.StartAnvil(t, 4690)
	deployer, robotPriv := testchain.NewKey(t), testchain.NewKey(t)
	node.Fund(t, testchain.Ether(10), crypto.PubkeyToAddress(deployer.PublicKey), crypto.PubkeyToAddress(robotPriv.PublicKey))
	token := testchain.DeployToken(t, node.Client, nil, deployer, "Test USD")
	dir := t.TempDir()
	key, err := wallet.ImportKey(wallet.KeyConfig{Path: filepath.Join(dir, "robot.json")}, crypto.FromECDSA(robotPriv))
	if err != nil {
		t.Fatal(err)
	}
	w, err := wallet.Open(ctx, wallet.Config{ChainID: 4690, RPC: node.URL, Signer: key, Journal: filepath.Join(dir, "payments"), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ledger, err := spend.Open(spend.Config{Path: filepath.Join(dir, "spend")})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	pol, err := spend.Compile(spend.Rules{Payees: []string{alice.Hex(), bob.Hex(), treasury.Hex()},
		Limits: []spend.Limit{{Chain: 4690, Asset: token.Hex(), PerPayment: big.NewInt(5000), PerHour: big.NewInt(10000), PerDay: big.NewInt(10000)}}})
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "earnings")
	s, err := Open(config(path, token))
	if err != nil {
		t.Fatal(err)
	}
	earn := func(i int, amount int64) {
		// The sale's money arrives (an x402 settlement to the robot), then
		// is recorded; a retried record is not counted twice.
		testchain.Mint(t, node.Client, nil, deployer, token, w.Address(), big.NewInt(amount))
		for range 2 {
			if err := s.Earn(ctx, fmt.Sprintf("sale-%d", i), big.NewInt(amount), "x402 /feed"); err != nil {
				t.Fatal(err)
			}
		}
	}
	earn(1, 1200)
	if rs, err := s.Payout(ctx, &policyPayer{w: w, ledger: ledger, policy: pol}); err != nil || len(rs) != 0 {
		t.Fatalf("payout below the threshold: %v %v", rs, err)
	}
	earn(2, 1301) // held 2501 ≥ 2000: split 1250 / 750 / 501
	// The agent stops after paying alice.
	if _, err := s.Payout(ctx, &policyPayer{w: w, ledger: ledger, policy: pol, failAfter: 1}); err == nil {
		t.Fatal("the interrupted payout reported success")
	}
	s.Close()
	s, err = Open(config(path, token))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.Status()
	if !st.Pending || st.Earned.Int64() != 2501 || st.Held.Sign() != 0 || st.PaidOut.Int64() != 1250 || st.Paying.Int64() != 1251 {
		t.Fatalf("after restart %+v", st)
	}
	rs, err := s.Payout(ctx, &policyPayer{w: w, ledger: ledger, policy: pol})
	if err != nil || len(rs) != 2 {
		t.Fatalf("resumed payout: %v %v", rs, err)
	}
	for who, want := range map[common.Address]int64{alice: 1250, bob: 750, treasury: 501, w.Address(): 0} {
		got, err := w.BalanceOf(ctx, token, who)
		if err != nil {
			t.Fatal(err)
		}
		if got.Int64() != want {
			t.Errorf("%s holds %v, want %d", who, got, want)
		}
	}
	st = s.Status()
	if st.Pending || st.Rounds != 1 || st.PaidOut.Int64() != 2501 || st.PerPayee[0].Paid.Int64() != 1250 {
		t.Fatalf("status %+v", st)
	}
	if h, _ := ledger.Spent(4690, token.Hex()); h.Int64() != 2501 {
		t.Fatalf("spend ledger holds %v, want the 2501 paid out", h)
	}
}

// recordingPayer pays nothing on chain: it records the transfers asked for,
// to test when the splitter pays (the anvil tests check what is paid).
type recordingPayer struct{ paid []wallet.Transfer }

func (p *recordingPayer) Pay(_ context.Context, t wallet.Transfer) (*wallet.Receipt, error) {
	p.paid = append(p.paid, t)
	return &wallet.Receipt{Key: t.Key, TxHash: common.BytesToHash([]byte(t.Key))}, nil
}

// TestScheduledPayoutWithoutThreshold: with no threshold, Payout never
// starts a round and PayoutHeld pays whatever is held, once.
func TestScheduledPayoutWithoutThreshold(t *testing.T) {
	c := config(filepath.Join(t.TempDir(), "e"), common.Address{1})
	c.Threshold = nil
	s, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	p := &recordingPayer{}
	if rs, err := s.PayoutHeld(ctx, p); err != nil || len(rs) != 0 {
		t.Fatalf("scheduled payout with nothing held: %v %v", rs, err)
	}
	if err := s.Earn(ctx, "sale-1", big.NewInt(10), "x402"); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Payout(ctx, p); err != nil || len(rs) != 0 {
		t.Fatalf("threshold payout without a threshold: %v %v", rs, err)
	}
	if rs, err := s.PayoutHeld(ctx, p); err != nil || len(rs) != 3 {
		t.Fatalf("scheduled payout: %v %v", rs, err)
	}
	if fmt.Sprint(p.paid[0].Amount, p.paid[1].Amount, p.paid[2].Amount) != "5 3 2" {
		t.Fatalf("paid %v", p.paid)
	}
	if rs, _ := s.PayoutHeld(ctx, p); len(rs) != 0 || s.Status().Held.Sign() != 0 || s.Status().PaidOut.Int64() != 10 {
		t.Fatalf("second scheduled payout paid again: %v %+v", rs, s.Status())
	}
}
