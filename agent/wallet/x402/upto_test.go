package x402

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/spend"
)

// The upto tests sell through uptoSeller, an in-test server speaking the
// x402 v2 wire protocol for the upto scheme: it verifies the buyer's Permit2
// signature with RecoverUpto and reports a settlement of the metered
// amount it is given. Settlement on chain is scripted, not real: it needs
// Permit2 and x402's upto proxy deployed at their canonical addresses, which
// no local chain here has. The npm @x402/evm upto client (interop below)
// pays it too, so the signature is checked against code we did not write.

var (
	uptoPayTo       = common.HexToAddress("0x00000000000000000000000000000000000000aa")
	uptoToken       = common.HexToAddress("0x0000000000000000000000000000000000000c0c")
	uptoFacilitator = common.HexToAddress("0x00000000000000000000000000000000000000fa")
)

type uptoSeller struct {
	max     string
	settled string // what the seller reports it took
	mu      sync.Mutex
	payers  []common.Address
	refusal string
}

func (s *uptoSeller) requirements() Requirements {
	return Requirements{Scheme: SchemeUpto, Network: Network(chain), Asset: uptoToken.Hex(), Amount: s.max, PayTo: uptoPayTo.Hex(),
		MaxTimeoutSeconds: 60, Extra: map[string]any{"facilitatorAddress": uptoFacilitator.Hex(), "name": "Test USD", "version": "2"}}
}

func (s *uptoSeller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	require := func(msg string) {
		h, _ := encodeHeader(PaymentRequired{X402Version: 2, Error: msg, Resource: &ResourceInfo{URL: "http://" + r.Host + r.URL.Path}, Accepts: []Requirements{s.requirements()}})
		w.Header().Set(HeaderRequired, h)
		w.WriteHeader(http.StatusPaymentRequired)
		w.Write([]byte("{}"))
	}
	v := r.Header.Get(HeaderSignature)
	if v == "" {
		require("payment required")
		return
	}
	var p PaymentPayload
	if err := decodeHeader(HeaderSignature, v, &p); err != nil {
		require(err.Error())
		return
	}
	a, who, err := RecoverUpto(chain, p.Payload)
	switch {
	case err != nil:
	case p.Accepted == nil || p.Accepted.Scheme != SchemeUpto:
		err = errors.New("payload.accepted is not the upto offer")
	case who != a.From:
		err = fmt.Errorf("signed by %s, authorization from %s", who, a.From)
	case a.Spender != UptoProxyAddress || a.To != uptoPayTo || a.Facilitator != uptoFacilitator || a.Token != uptoToken || a.Max.String() != s.max:
		err = fmt.Errorf("authorization %+v does not match the offer", a)
	case a.Deadline.Int64() <= time.Now().Unix():
		err = errors.New("authorization expired")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.refusal = err.Error()
		require(err.Error())
		return
	}
	s.payers = append(s.payers, a.From)
	h, _ := encodeHeader(SettleResponse{Success: true, Transaction: "0x" + strings.Repeat("ab", 32), Network: Network(chain), Payer: a.From.Hex(), Amount: s.settled})
	w.Header().Set(HeaderResponse, h)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"tokens":120}`))
}

// serveUpto serves seller on a loopback test server, closed at cleanup, and
// makes a fresh buyer key.
func serveUpto(tb testing.TB, seller *uptoSeller) (url string, buyer *wallet.Key) {
	tb.Helper()
	srv := httptest.NewServer(seller)
	tb.Cleanup(srv.Close)
	priv, err := crypto.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return srv.URL, importKey(tb, tb.TempDir(), priv)
}

// uptoClient is an HTTP client that pays upto offers on chain as buyer,
// each payment approved by approve; base nil is http.DefaultTransport.
func uptoClient(tb testing.TB, buyer *wallet.Key, approve Approver, base http.RoundTripper) *http.Client {
	tb.Helper()
	tr, err := NewTransport(TransportConfig{Base: base, Signer: buyer, Approve: approve, Chains: []uint64{chain}})
	if err != nil {
		tb.Fatal(err)
	}
	return &http.Client{Transport: tr}
}

// uptoBudget is the core's side in miniature: the spend ledger reserves
// the maximum and commits what the seller settled.
func uptoBudget(t testing.TB, perPayment int64) (*spend.Ledger, Approver, func() []Outcome) {
	t.Helper()
	l, err := spend.Open(spend.Config{Path: filepath.Join(t.TempDir(), "spend")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pol, err := spend.Compile(spend.Rules{Payees: []string{uptoPayTo.Hex()},
		Limits: []spend.Limit{{Chain: chain, Asset: uptoToken.Hex(), PerPayment: big.NewInt(perPayment), PerHour: big.NewInt(10000), PerDay: big.NewInt(10000)}}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var outs []Outcome
	approve := func(ctx context.Context, q Quote) (func(Outcome), error) {
		d, err := l.Reserve(ctx, pol, spend.Payment{Key: q.Key, Chain: q.Offer.ChainID, Asset: q.Offer.Asset.Hex(), Payee: q.Offer.PayTo.Hex(), Amount: q.Offer.Amount}, false)
		if err != nil {
			return nil, err
		}
		if d.Verdict != spend.Allow {
			return nil, errors.New(d.String())
		}
		return func(o Outcome) {
			if o.Settled {
				l.CommitAmount(ctx, q.Key, o.Tx, o.Amount)
			}
			mu.Lock()
			outs = append(outs, o)
			mu.Unlock()
		}, nil
	}
	return l, approve, func() []Outcome { mu.Lock(); defer mu.Unlock(); return append([]Outcome(nil), outs...) }
}

// TestUptoPaysTheSettledAmount: the buyer authorizes up to 500, the seller
// settles 120, and only 120 counts against the caps.
func TestUptoPaysTheSettledAmount(t *testing.T) {
	seller := &uptoSeller{max: "500", settled: "120"}
	url, buyer := serveUpto(t, seller)
	l, approve, outs := uptoBudget(t, 1000)
	resp, err := uptoClient(t, buyer, approve, nil).Get(url + "/llm")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(seller.payers) != 1 || seller.payers[0] != buyer.Address() {
		t.Fatalf("status %d, payers %v, refusal %q", resp.StatusCode, seller.payers, seller.refusal)
	}
	o := outs()
	if len(o) != 1 || o[0].Amount == nil || o[0].Amount.Int64() != 120 || o[0].Quote.Offer.Scheme != SchemeUpto || o[0].Upto.Max.Int64() != 500 {
		t.Fatalf("outcome %+v", o)
	}
	if h, _ := l.Spent(chain, uptoToken.Hex()); h.Int64() != 120 {
		t.Fatalf("the ledger counts %v, want the 120 settled", h)
	}
}

// TestUptoOverReportedSettlement: a seller claiming more than the maximum is
// reported and the whole maximum stays counted; a maximum above the cap is
// refused before anything is signed.
func TestUptoOverReportedSettlement(t *testing.T) {
	seller := &uptoSeller{max: "500", settled: "501"}
	url, buyer := serveUpto(t, seller)
	l, approve, outs := uptoBudget(t, 1000)
	resp, err := uptoClient(t, buyer, approve, nil).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if o := outs(); len(o) != 1 || o[0].Amount != nil || o[0].Err == nil || !strings.Contains(o[0].Err.Error(), `settling "501"`) {
		t.Fatalf("outcome %+v", o)
	}
	if h, _ := l.Spent(chain, uptoToken.Hex()); h.Int64() != 500 {
		t.Fatalf("the ledger counts %v, want the 500 maximum", h)
	}

	_, approve, outs = uptoBudget(t, 400) // the maximum 500 is above the per-payment cap
	_, err = uptoClient(t, buyer, approve, nil).Get(url)
	var pe *PaymentError
	if !errors.As(err, &pe) || pe.Stage != "policy" || len(outs()) != 0 || len(seller.payers) != 1 {
		t.Fatalf("over the cap: %v, outcomes %d, payers %d", err, len(outs()), len(seller.payers))
	}
}

// TestInteropUptoNpmClientGoSeller: @x402/fetch with @x402/evm's
// UptoEvmScheme pays uptoSeller, which checks the Permit2 signature with
// RecoverUpto: the npm client's payload is what we verify.
func TestInteropUptoNpmClientGoSeller(t *testing.T) {
	t.Parallel()
	m := newMarket(t)
	seller := &uptoSeller{max: "500", settled: "42"}
	srv := httptest.NewServer(seller)
	defer srv.Close()
	cmd := node(t, m, map[string]string{"KEY": hexutil.Encode(crypto.FromECDSA(m.buyerPriv)), "TOKEN": uptoToken.Hex()}, "upto-client", srv.URL+"/llm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node upto client: %v (seller refusal %q)", err, seller.refusal)
	}
	var res struct {
		Status int
		Settle *SettleResponse
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node client printed %q: %v", out, err)
	}
	if res.Status != 200 || res.Settle == nil || res.Settle.Amount != "42" || len(seller.payers) != 1 || seller.payers[0] != m.buyer.Address() {
		t.Fatalf("node client got %+v; payers %v; refusal %q", res, seller.payers, seller.refusal)
	}
}

// TestInteropUptoGoPayloadViemVerifies: viem's verifyTypedData with
// @x402/evm's uptoPermit2WitnessTypes accepts the payload our client signs.
func TestInteropUptoGoPayloadViemVerifies(t *testing.T) {
	t.Parallel()
	m := newMarket(t)
	o, err := ParseOffer(2, (&uptoSeller{max: "500"}).requirements())
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewUptoAuth(o, m.buyer.Address(), time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p, err := SignUpto(m.buyer, chain, a)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	out, err := node(t, m, map[string]string{"PAYLOAD": string(b)}, "upto-verify").Output()
	if err != nil || strings.TrimSpace(string(out)) != `{"valid":true}` {
		t.Fatalf("viem verify: %v %s", err, out)
	}
	// And a tampered maximum does not verify.
	p.Permit2Authorization.Permitted.Amount = "5000"
	b, _ = json.Marshal(p)
	if out, err = node(t, m, map[string]string{"PAYLOAD": string(b)}, "upto-verify").Output(); err != nil || strings.TrimSpace(string(out)) != `{"valid":false}` {
		t.Fatalf("viem verify of a tampered payload: %v %s", err, out)
	}
}
