package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/spend"
	"github.com/depai/depai/agent/wallet/x402"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// The payment tests run the host's pay capability and its x402 client in
// http.fetch against anvil (a real EVM node on 127.0.0.1), with the real
// policy engine, spend ledger, audit log and wallet. The plugin is a stub
// instance: the tests call the host's dispatcher (HostCall) exactly as a
// plugin's host_call reaches it on either transport.

const payChain = 3338

var payee = common.HexToAddress("0x00000000000000000000000000000000000000b0")

// stubTransport loads a plugin with no tools that requests what it is
// granted.
type stubTransport struct{}

func (stubTransport) Load(_ context.Context, spec host.LoadSpec) (host.Instance, error) {
	return stubInstance{m: wire.Manifest{Name: spec.Name, Version: "1.0.0", ABI: wire.ABIVersion, Requests: spec.Grants}}, nil
}

type stubInstance struct{ m wire.Manifest }

func (s stubInstance) Manifest() wire.Manifest { return s.m }
func (s stubInstance) Call(context.Context, wire.Call) wire.Result {
	return wire.Result{Error: wire.Errorf(wire.CodeNotFound, "no methods")}
}
func (stubInstance) Close(context.Context) error { return nil }

// payRig is one agent's money behind a plugin host: everything lives in dir,
// so a second rig on the same dir is the agent after a restart.
type payRig struct {
	h      *host.Host
	engine *policy.Engine
	db     *memory.DB
	wallet *wallet.Client
	key    *wallet.Key
}

func spendOf(perPayment, approve int64, asset string) config.Spend {
	lim := config.SpendLimit{Chain: payChain, Asset: asset, PerPayment: config.NewAmount(big.NewInt(perPayment)),
		PerHour: config.NewAmount(big.NewInt(100 * perPayment)), PerDay: config.NewAmount(big.NewInt(1000 * perPayment))}
	if approve > 0 {
		a := config.NewAmount(big.NewInt(approve))
		lim.ApproveAbove = &a
	}
	return config.Spend{Payees: []string{"*"}, Limits: []config.SpendLimit{lim}}
}

func newPayRig(t testing.TB, dir, rpc string, sp config.Spend, httpGrant string) *payRig {
	t.Helper()
	ctx := context.Background()
	r := &payRig{}
	var err error
	if r.key, err = wallet.OpenKey(wallet.KeyConfig{Path: filepath.Join(dir, "evm.json")}); err != nil {
		t.Fatal(err)
	}
	if r.db, err = memory.Open(ctx, memory.Config{Dir: filepath.Join(dir, "memory")}); err != nil {
		t.Fatal(err)
	}
	log, err := policy.OpenLog(ctx, r.db)
	if err != nil {
		t.Fatal(err)
	}
	state, err := policy.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := spend.Open(spend.Config{Path: filepath.Join(dir, "spend.ledger")})
	if err != nil {
		t.Fatal(err)
	}
	r.engine, err = policy.New(ctx, policy.Config{Log: log, State: state, ApprovalTimeout: 2 * time.Second,
		Agents: map[string]policy.Rules{"rover": {Spend: sp, Ledger: ledger}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.wallet, err = wallet.Open(ctx, wallet.Config{ChainID: payChain, RPC: rpc, Signer: r.key, Journal: filepath.Join(dir, "payments.journal"), PollInterval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	r.h = host.New(host.Config{Agent: "rover", Gate: r.engine, Store: r.db, Transports: map[string]host.Transport{"stub": stubTransport{}},
		Payments: &host.Payments{Wallet: r.wallet, Signer: r.key}})
	grants := wire.Capabilities{Payment: true}
	if httpGrant != "" {
		grants.HTTP = []string{httpGrant}
	}
	if _, err := r.h.Load(ctx, host.PluginSpec{Name: "buyer", Path: os.Args[0], Kind: "stub", Grants: grants}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.h.Close(context.Background())
		r.wallet.Close()
		ledger.Close()
		log.Close()
		r.db.Close()
	})
	return r
}

func (r *payRig) call(method string, args any) ([]byte, *wire.Error) {
	b, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.h.HostCall(ctx, "buyer", method, b)
}

func (r *payRig) audit(t testing.TB, action string) []policy.Entry {
	t.Helper()
	var out []policy.Entry
	for rec, err := range r.db.Query(context.Background(), memory.Query{Namespace: policy.AuditNamespace, Ascending: true}) {
		if err != nil {
			t.Fatal(err)
		}
		var e policy.Entry
		if err := json.Unmarshal(rec.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func nativeBalance(t testing.TB, node *testchain.Anvil, who common.Address) int64 {
	t.Helper()
	b, err := node.Client.BalanceAt(context.Background(), who, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.Int64()
}

func TestPayExecuteOnAnvil(t *testing.T) {
	node := testchain.StartAnvil(t, payChain)
	r := newPayRig(t, t.TempDir(), node.URL, spendOf(100, 0, "native"), "")
	node.Fund(t, testchain.Ether(1), r.key.Address())

	q, werr := r.call(wire.HostPayQuote, wire.PayArgs{To: payee.Hex(), Amount: "60"})
	if werr != nil {
		t.Fatal(werr)
	}
	var quote wire.PayQuote
	json.Unmarshal(q, &quote)
	if quote.Decision != "allow" || quote.Balance != testchain.Ether(1).String() || quote.Chain != payChain {
		t.Fatalf("quote: %+v", quote)
	}
	out, werr := r.call(wire.HostPayExecute, wire.PayArgs{Key: "invoice-1", To: payee.Hex(), Amount: "60"})
	if werr != nil {
		t.Fatal(werr)
	}
	var rc wire.PayReceipt
	json.Unmarshal(out, &rc)
	if rc.Tx == "" || rc.Reused || rc.Key != "invoice-1" {
		t.Fatalf("receipt: %+v", rc)
	}
	again, werr := r.call(wire.HostPayExecute, wire.PayArgs{Key: "invoice-1", To: payee.Hex(), Amount: "60"})
	if werr != nil {
		t.Fatal(werr)
	}
	var rc2 wire.PayReceipt
	json.Unmarshal(again, &rc2)
	if !rc2.Reused || rc2.Tx != rc.Tx {
		t.Fatalf("retry: %+v", rc2)
	}
	if b := nativeBalance(t, node, payee); b != 60 {
		t.Fatalf("payee holds %d wei, want 60 (paid once)", b)
	}
	for _, tc := range []struct {
		args wire.PayArgs
		code string
		msg  string
	}{
		{wire.PayArgs{Key: "k2", To: payee.Hex(), Amount: "101"}, wire.CodeDenied, "above the per-payment cap 100"},
		{wire.PayArgs{To: payee.Hex(), Amount: "1"}, wire.CodeInvalidArgument, "key is required"},
		{wire.PayArgs{Key: "k3", To: "bob", Amount: "1"}, wire.CodeInvalidArgument, `to "bob" is not a 0x-prefixed`},
		{wire.PayArgs{Key: "k4", To: payee.Hex(), Amount: "1.5"}, wire.CodeInvalidArgument, `amount "1.5" is not a positive decimal integer`},
		{wire.PayArgs{Key: "invoice-1", To: payee.Hex(), Amount: "61"}, wire.CodeDenied, "was used for a different payment"},
	} {
		if _, werr := r.call(wire.HostPayExecute, tc.args); werr == nil || werr.Code != tc.code || !strings.Contains(werr.Message, tc.msg) {
			t.Errorf("%+v: got %v, want %s with %q", tc.args, werr, tc.code, tc.msg)
		}
	}
	if b := nativeBalance(t, node, payee); b != 60 {
		t.Fatalf("payee holds %d wei after refusals, want 60", b)
	}
	if n := len(r.audit(t, "pay.quote")); n != 1 {
		t.Fatalf("%d quote records, want 1", n)
	}
	var receipts int
	for _, e := range r.audit(t, "pay.execute") {
		if e.Phase == policy.PhaseOutcome && e.Error == nil && strings.Contains(string(e.Result), rc.Tx) {
			receipts++
		}
	}
	if receipts != 2 {
		t.Fatalf("%d receipts on record, want 2 (the payment and its retry)", receipts)
	}
}

// TestPayWalletRefusesALyingNode: a node that reports another chain id
// than the config's is refused before any key is used.
func TestPayWalletRefusesALyingNode(t *testing.T) {
	node := testchain.StartAnvil(t, 31337)
	key, err := wallet.OpenKey(wallet.KeyConfig{Path: filepath.Join(t.TempDir(), "k.json")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wallet.Open(context.Background(), wallet.Config{ChainID: payChain, RPC: node.URL, Signer: key, Journal: filepath.Join(t.TempDir(), "j")})
	if !errors.Is(err, wallet.ErrWrongChain) || !strings.Contains(err.Error(), "reports chain id 31337, the configuration says 3338") {
		t.Fatalf("open against a lying node: %v", err)
	}
}

func TestPayApprovalAndStop(t *testing.T) {
	node := testchain.StartAnvil(t, payChain)
	r := newPayRig(t, t.TempDir(), node.URL, spendOf(100, 50, "native"), "")
	node.Fund(t, testchain.Ether(1), r.key.Address())
	op := policy.Principal{Kind: policy.PrincipalOperator, ID: "op", Role: policy.RoleOperator}
	type res struct {
		out  []byte
		werr *wire.Error
	}
	results := make(chan res, 1)
	execute := func(key string, amount int) {
		go func() {
			out, werr := r.call(wire.HostPayExecute, wire.PayArgs{Key: key, To: payee.Hex(), Amount: fmt.Sprint(amount)})
			results <- res{out, werr}
		}()
	}
	waitParked := func() policy.Approval {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if ps := r.engine.Approvals(); len(ps) == 1 {
				return ps[0]
			}
		}
		t.Fatal("the payment did not park")
		return policy.Approval{}
	}
	execute("big-1", 80)
	ap := waitParked()
	if b := nativeBalance(t, node, payee); b != 0 {
		t.Fatalf("paid before approval: %d", b)
	}
	if err := r.engine.Approve(context.Background(), ap.ID, op); err != nil {
		t.Fatal(err)
	}
	if got := <-results; got.werr != nil {
		t.Fatalf("approved payment: %v", got.werr)
	}
	execute("big-2", 90)
	waitParked()
	if got := <-results; got.werr == nil || !strings.Contains(got.werr.Message, "nobody approved") {
		t.Fatalf("unanswered payment: %v", got.werr)
	}
	if err := r.engine.Stop(context.Background(), op, "test"); err != nil {
		t.Fatal(err)
	}
	if _, werr := r.call(wire.HostPayExecute, wire.PayArgs{Key: "small", To: payee.Hex(), Amount: "1"}); werr == nil || werr.Code != wire.CodeDenied || !strings.Contains(werr.Message, "emergency stop") {
		t.Fatalf("payment under the e-stop: %v", werr)
	}
	if b := nativeBalance(t, node, payee); b != 80 {
		t.Fatalf("payee holds %d, want only the approved 80", b)
	}
}

const crashChildEnv = "DEPAI_PAY_CRASH_CHILD"

// TestPayCrashChild is the agent that gets killed: run only as a child of
// TestPayKilledBetweenSendAndReceipt.
func TestPayCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs as a child process of TestPayKilledBetweenSendAndReceipt")
	}
	r := newPayRig(t, dir, os.Getenv("DEPAI_PAY_RPC"), spendOf(1000, 0, "native"), "")
	fmt.Println("READY")
	r.call(wire.HostPayExecute, wire.PayArgs{Key: "invoice-7", To: payee.Hex(), Amount: "777"})
	t.Fatal("the payment returned; the node mines nothing, so the child should have been killed waiting")
}

// TestPayKilledBetweenSendAndReceipt kills the agent (SIGKILL) after its
// pay.execute broadcast the transaction and before the receipt — anvil
// mines nothing until the test says so — then restarts it on the same data
// and retries with the same key: the payee is paid once, the spend ledger
// counts it once.
func TestPayKilledBetweenSendAndReceipt(t *testing.T) {
	node := testchain.StartAnvil(t, payChain, "--no-mining")
	dir := t.TempDir()
	key, err := wallet.OpenKey(wallet.KeyConfig{Path: filepath.Join(dir, "evm.json")})
	if err != nil {
		t.Fatal(err)
	}
	node.Fund(t, testchain.Ether(1), key.Address())
	cmd := exec.Command(os.Args[0], "-test.run=^TestPayCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "DEPAI_PAY_RPC="+node.URL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sent := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !sent; time.Sleep(10 * time.Millisecond) {
		n, err := node.Client.PendingNonceAt(context.Background(), key.Address())
		sent = err == nil && n == 1
	}
	if !sent {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the child never broadcast its payment")
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	node.Mine(t, 1)

	r := newPayRig(t, dir, node.URL, spendOf(1000, 0, "native"), "")
	out, werr := r.call(wire.HostPayExecute, wire.PayArgs{Key: "invoice-7", To: payee.Hex(), Amount: "777"})
	if werr != nil {
		t.Fatal(werr)
	}
	var rc wire.PayReceipt
	json.Unmarshal(out, &rc)
	if !rc.Reused {
		t.Fatalf("the retry paid again: %+v", rc)
	}
	if b := nativeBalance(t, node, payee); b != 777 {
		t.Fatalf("payee holds %d wei, want 777 (paid once)", b)
	}
	if hour, _, _ := r.engine.Spent("rover", payChain, "native"); hour.Int64() != 777 {
		t.Fatalf("the ledger counts %v, want 777 once", hour)
	}
}

// TestFetchPaysX402 is a plugin's http.fetch of an x402-gated feed: an
// in-test seller (our x402 server middleware, with a facilitator settling
// EIP-3009 transfers on anvil — the real protocol, scripted content) asks
// 1000 token units; the host pays within the spend policy and the plugin
// gets the reading. A second feed priced over the per-payment cap is
// refused and nothing moves.
func TestFetchPaysX402(t *testing.T) {
	node := testchain.StartAnvil(t, payChain)
	deployer, facPriv := testchain.NewKey(t), testchain.NewKey(t)
	node.Fund(t, testchain.Ether(100), crypto.PubkeyToAddress(deployer.PublicKey), crypto.PubkeyToAddress(facPriv.PublicKey))
	token := testchain.DeployToken(t, node.Client, nil, deployer, "Test USD")
	dir := t.TempDir()
	facKey, err := wallet.ImportKey(wallet.KeyConfig{Path: filepath.Join(dir, "fac.json")}, crypto.FromECDSA(facPriv))
	if err != nil {
		t.Fatal(err)
	}
	facWallet, err := wallet.Open(context.Background(), wallet.Config{ChainID: payChain, RPC: node.URL, Signer: facKey, Journal: filepath.Join(dir, "fac.journal"), PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer facWallet.Close()
	seller := common.HexToAddress("0x5e11e55e11e55e11e55e11e55e11e55e11e55e1")
	feed := func(price int64) *httptest.Server {
		guard, err := x402.OpenReplayGuard(filepath.Join(t.TempDir(), "replay"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { guard.Close() })
		pw, err := x402.Paywall(x402.PaywallConfig{Facilitator: x402.NewLocal(facWallet, nil), Replay: guard,
			Accepts: []x402.Price{{ChainID: payChain, Asset: token, Amount: big.NewInt(price), PayTo: seller, TokenName: "Test USD", TokenVersion: "2"}}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(pw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, `{"sensor":"t1","celsius":21.5}`)
		})))
		t.Cleanup(srv.Close)
		return srv
	}
	cheap, dear := feed(1000), feed(5000)
	// Both feeds listen on 127.0.0.1; granting the host name covers only
	// one port, so grant each.
	cu, _ := url.Parse(cheap.URL)
	du, _ := url.Parse(dear.URL)
	r := newPayRig(t, filepath.Join(dir, "agent"), node.URL, spendOf(2000, 0, token.Hex()), cu.Host)
	testchain.Mint(t, node.Client, nil, deployer, token, r.key.Address(), big.NewInt(1_000_000))
	out, werr := r.call(wire.HostHTTPFetch, wire.HTTPRequest{URL: cheap.URL + "/reading"})
	if werr != nil {
		t.Fatal(werr)
	}
	var resp wire.HTTPResponse
	json.Unmarshal(out, &resp)
	if resp.Status != 200 || string(resp.Body) != `{"sensor":"t1","celsius":21.5}` || http.Header(resp.Header).Get(x402.HeaderResponse) == "" {
		t.Fatalf("paid fetch: %d %s %v", resp.Status, resp.Body, resp.Header)
	}
	if b := tokenBalance(t, node, token, seller); b != 1000 {
		t.Fatalf("seller holds %d, want 1000", b)
	}
	if hour, _, _ := r.engine.Spent("rover", payChain, token.Hex()); hour.Int64() != 1000 {
		t.Fatalf("the ledger counts %v, want 1000", hour)
	}

	r2 := newPayRig(t, filepath.Join(dir, "agent2"), node.URL, spendOf(2000, 0, token.Hex()), du.Host)
	testchain.Mint(t, node.Client, nil, deployer, token, r2.key.Address(), big.NewInt(1_000_000))
	_, werr = r2.call(wire.HostHTTPFetch, wire.HTTPRequest{URL: dear.URL + "/reading"})
	if werr == nil || werr.Code != wire.CodeDenied || !strings.Contains(werr.Message, "above the per-payment cap 2000") {
		t.Fatalf("fetch over the cap: %v", werr)
	}
	if b := tokenBalance(t, node, token, seller); b != 1000 {
		t.Fatalf("seller holds %d after a refused payment, want 1000", b)
	}
	var decided bool
	for _, e := range r.audit(t, "x402.pay") {
		decided = decided || (e.Phase == policy.PhaseDecision && e.Decision == policy.Allow)
	}
	if !decided {
		t.Fatal("the x402 payment's decision is not on record")
	}
}

func tokenBalance(t testing.TB, node *testchain.Anvil, token, who common.Address) int64 {
	t.Helper()
	data, _ := testchain.Token.Pack("balanceOf", who)
	out, err := node.Client.CallContract(context.Background(), ethereum.CallMsg{To: &token, Data: data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return new(big.Int).SetBytes(out).Int64()
}
