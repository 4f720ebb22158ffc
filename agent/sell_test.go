package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/x402"
)

const sellerFleet = `
name: rover
role: robot
wallet:
  chain_id: 3338
  rpc: %[1]s
  sell: {asset: "%[2]s", price: 1000, token_name: Test USD, token_version: "2"}
  earnings:
    asset: "%[2]s"
    threshold: 1000
    owners: [{name: alice, payee: "0x00000000000000000000000000000000000000a1", weight: 3}]
    treasury: {name: dao, payee: "0x00000000000000000000000000000000000000d0", weight: 1}
safety:
  spend:
    payees: ["0x00000000000000000000000000000000000000a1", "0x00000000000000000000000000000000000000d0"]
    limits: [{chain: 3338, asset: "%[2]s", per_payment: 1000, per_hour: 10000, per_day: 100000}]
`

// recordingTransport keeps the last payment header a buyer sent.
type recordingTransport struct{ sig string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if s := req.Header.Get(x402.HeaderSignature); s != "" {
		r.sig = s
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestSellReadingsForX402: an agent sells its sensor readings on the
// operator API's /x402/ route. A buyer agent's x402 client pays 1000 units
// of an EIP-3009 token (settled by the seller's own wallet on anvil), gets
// the readings, and the seller's earnings are split to its owners 3:1; the
// same payment replayed is refused by the durable replay guard.
func TestSellReadingsForX402(t *testing.T) {
	node := testchain.StartAnvil(t, 3338)
	deployer := testchain.NewKey(t)
	node.Fund(t, testchain.Ether(100), crypto.PubkeyToAddress(deployer.PublicKey))
	token := testchain.DeployToken(t, node.Client, nil, deployer, "Test USD")
	f, err := openWith(t, fmt.Sprintf(sellerFleet, node.URL, token.Hex()), agent.Options{Wallets: fastWallets})
	if err != nil {
		t.Fatal(err)
	}
	seller, ok, err := f.WalletAddress("rover")
	if !ok {
		t.Fatal(err)
	}
	node.Fund(t, testchain.Ether(1), seller) // gas for settling and paying out
	rover, _ := f.Agent("rover")
	if err := rover.Report(t.Context(), "thermo", "t1", json.RawMessage(`{"celsius":21.5}`)); err != nil {
		t.Fatal(err)
	}
	h, err := f.SellHandler()
	if err != nil || h == nil {
		t.Fatalf("SellHandler: %v %v", h, err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	buyerKey, err := wallet.OpenKey(wallet.KeyConfig{Path: filepath.Join(t.TempDir(), "buyer.json")})
	if err != nil {
		t.Fatal(err)
	}
	testchain.Mint(t, node.Client, nil, deployer, token, buyerKey.Address(), big.NewInt(1_000_000))
	rec := &recordingTransport{}
	buyer, err := x402.NewTransport(x402.TransportConfig{Base: rec, Signer: buyerKey,
		Approve: func(context.Context, x402.Quote) (func(x402.Outcome), error) { return func(x402.Outcome) {}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL + agent.SellPath + "rover/readings?sensor=t1"
	resp, err := (&http.Client{Transport: buyer}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"sensor":"t1"`) || !strings.Contains(string(body), `"celsius":21.5`) {
		t.Fatalf("bought: %d %s", resp.StatusCode, body)
	}
	// The replayed payment is refused before anything is settled.
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set(x402.HeaderSignature, rec.sig)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("replayed payment answered %d", resp.StatusCode)
	}
	// The earnings are paid out in the background; wait for the split.
	want := map[common.Address]int64{alice: 750, treasury: 250}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		done := true
		for who, n := range want {
			if tokenBalanceOf(t, node, token, who) != n {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sale was not split: alice %d, treasury %d", tokenBalanceOf(t, node, token, alice), tokenBalanceOf(t, node, token, treasury))
		}
	}
	ev := earningsEvent(t, f)
	if ev.Type != agent.EventReply || !strings.Contains(ev.Text, "earned 1000") {
		t.Fatalf("/earnings: %+v", ev)
	}
	evs := events(t, rover, agent.Input{Text: "/audit 50"})
	b, _ := json.Marshal(evs[len(evs)-1].Data)
	if !strings.Contains(string(b), "x402.sale") || !strings.Contains(string(b), "earnings.payout") {
		t.Fatalf("the sale and the payout are not on record: %s", b)
	}
}

func tokenBalanceOf(t *testing.T, node *testchain.Anvil, token, who common.Address) int64 {
	t.Helper()
	data, _ := testchain.Token.Pack("balanceOf", who)
	out, err := node.Client.CallContract(context.Background(), ethereum.CallMsg{To: &token, Data: data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return new(big.Int).SetBytes(out).Int64()
}
