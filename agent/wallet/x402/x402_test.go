package x402

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/spend"
)

const chain = 3338

// market is a seller, a buyer and a facilitator on anvil, with the test
// token; the facilitator is the Local one behind a real HTTP server.
type market struct {
	node        *testchain.Anvil
	token       common.Address
	buyer       *wallet.Key
	buyerWallet *wallet.Client
	seller      common.Address
	facWallet   *wallet.Client
	facURL      string
	price       Price
	dir         string
	buyerPriv   *ecdsa.PrivateKey
	facPriv     *ecdsa.PrivateKey
}

func importKey(t testing.TB, dir string, priv *ecdsa.PrivateKey) *wallet.Key {
	k, err := wallet.ImportKey(wallet.KeyConfig{Path: filepath.Join(dir, fmt.Sprintf("key-%x.json", crypto.PubkeyToAddress(priv.PublicKey)))}, crypto.FromECDSA(priv))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newMarket(t testing.TB) *market {
	t.Helper()
	m := &market{dir: t.TempDir()}
	m.node = testchain.StartAnvil(t, chain)
	deployer, facPriv, buyerPriv := testchain.NewKey(t), testchain.NewKey(t), testchain.NewKey(t)
	m.node.Fund(t, testchain.Ether(100), crypto.PubkeyToAddress(deployer.PublicKey), crypto.PubkeyToAddress(facPriv.PublicKey))
	m.token = testchain.DeployToken(t, m.node.Client, nil, deployer, "Test USD")
	m.buyer = importKey(t, m.dir, buyerPriv)
	m.buyerPriv, m.facPriv = buyerPriv, facPriv
	testchain.Mint(t, m.node.Client, nil, deployer, m.token, m.buyer.Address(), big.NewInt(1_000_000))
	m.seller = common.HexToAddress("0x5e11e55e11e55e11e55e11e55e11e55e11e55e1")
	var err error
	m.facWallet, err = wallet.Open(context.Background(), wallet.Config{ChainID: chain, RPC: m.node.URL, Signer: importKey(t, m.dir, facPriv),
		Journal: filepath.Join(m.dir, "facilitator.journal"), PollInterval: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.facWallet.Close() })
	m.buyerWallet, err = wallet.Open(context.Background(), wallet.Config{ChainID: chain, RPC: m.node.URL, Signer: m.buyer,
		Journal: filepath.Join(m.dir, "buyer.journal")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.buyerWallet.Close() })
	fac := httptest.NewServer(NewLocal(m.facWallet, nil))
	t.Cleanup(fac.Close)
	m.facURL = fac.URL
	m.price = Price{ChainID: chain, Asset: m.token, Amount: big.NewInt(1000), PayTo: m.seller, TokenName: "Test USD", TokenVersion: "2"}
	return m
}

// sell starts a seller of a sensor feed; sales are collected.
func (m *market) sell(t testing.TB, fac Facilitator, handler http.Handler) (*httptest.Server, func() []Sale) {
	t.Helper()
	guard, err := OpenReplayGuard(filepath.Join(t.TempDir(), "replay"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guard.Close() })
	var mu sync.Mutex
	var sales []Sale
	pw, err := Paywall(PaywallConfig{Accepts: []Price{m.price}, Description: "temperature", MimeType: "application/json",
		Facilitator: fac, Replay: guard, OnSale: func(_ context.Context, s Sale) { mu.Lock(); sales = append(sales, s); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if handler == nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"sensor":"t1","celsius":21.5}`)
		})
	}
	srv := httptest.NewServer(pw(handler))
	t.Cleanup(srv.Close)
	return srv, func() []Sale { mu.Lock(); defer mu.Unlock(); return append([]Sale(nil), sales...) }
}

func (m *market) balance(t testing.TB, who common.Address) int64 {
	t.Helper()
	b, err := m.facWallet.BalanceOf(context.Background(), m.token, who)
	if err != nil {
		t.Fatal(err)
	}
	return b.Int64()
}

// budget is the core's use of the spend ledger as the Approver: reserve on
// approval, commit on settlement.
type budget struct {
	ledger *spend.Ledger
	policy *spend.Policy
	mu     sync.Mutex
	last   []Outcome
	denied []spend.Decision
}

func newBudget(t testing.TB, m *market, perDay int64) *budget {
	l, err := spend.Open(spend.Config{Path: filepath.Join(t.TempDir(), "spend")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pol, err := spend.Compile(spend.Rules{Payees: []string{m.seller.Hex()},
		Limits: []spend.Limit{{Chain: chain, Asset: m.token.Hex(), PerPayment: big.NewInt(5000), PerHour: big.NewInt(perDay), PerDay: big.NewInt(perDay)}}})
	if err != nil {
		t.Fatal(err)
	}
	return &budget{ledger: l, policy: pol}
}

func (b *budget) approve(ctx context.Context, q Quote) (func(Outcome), error) {
	d, err := b.ledger.Reserve(ctx, b.policy, spend.Payment{Key: q.Key, Chain: q.Offer.ChainID, Asset: q.Offer.Asset.Hex(),
		Payee: q.Offer.PayTo.Hex(), Amount: q.Offer.Amount, Purpose: q.URL}, false)
	if err != nil {
		return nil, err
	}
	if d.Verdict != spend.Allow {
		b.mu.Lock()
		b.denied = append(b.denied, d)
		b.mu.Unlock()
		return nil, errors.New(d.String())
	}
	return func(o Outcome) {
		if o.Settled {
			b.ledger.Commit(ctx, q.Key, o.Tx)
		}
		b.mu.Lock()
		b.last = append(b.last, o)
		b.mu.Unlock()
	}, nil
}

func (m *market) client(t testing.TB, b *budget, base http.RoundTripper) *http.Client {
	tr, err := NewTransport(TransportConfig{Base: base, Signer: m.buyer, Approve: b.approve, Chains: []uint64{chain}})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: tr}
}

// recorder keeps the payment headers a client sent.
type recorder struct {
	mu   sync.Mutex
	sent []http.Header
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.sent = append(r.sent, req.Header.Clone())
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func TestBuyWithinBudgetRefusedOver(t *testing.T) {
	m := newMarket(t)
	srv, sales := m.sell(t, &HTTPFacilitator{URL: m.facURL}, nil)
	b := newBudget(t, m, 2500) // two reads fit, the third does not
	rec := &recorder{}
	hc := m.client(t, b, rec)
	for i := range 2 {
		resp, err := hc.Get(srv.URL + "/feed/t1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"sensor":"t1","celsius":21.5}` {
			t.Fatalf("read %d: %d %s", i, resp.StatusCode, body)
		}
		var sr SettleResponse
		if err := decodeHeader(HeaderResponse, resp.Header.Get(HeaderResponse), &sr); err != nil || !sr.Success || !txHash().MatchString(sr.Transaction) {
			t.Fatalf("PAYMENT-RESPONSE %+v %v", sr, err)
		}
	}
	if got := m.balance(t, m.seller); got != 2000 {
		t.Fatalf("seller holds %d, want 2000", got)
	}
	_, err := hc.Get(srv.URL + "/feed/t1")
	var pe *PaymentError
	if !errors.As(err, &pe) || pe.Stage != "policy" || !strings.Contains(err.Error(), "per_hour_cap") {
		t.Fatalf("over budget: %v", err)
	}
	if got := m.balance(t, m.seller); got != 2000 {
		t.Fatalf("seller holds %d after a refused payment, want 2000", got)
	}
	if len(b.denied) != 1 || !strings.Contains(b.denied[0].Reason, "2000 spent in the last hour + 1000 = 3000 is above the per-hour cap 2500") {
		t.Fatalf("denials %+v", b.denied)
	}
	for _, o := range b.last {
		if e, ok := b.ledger.Get(o.Quote.Key); !ok || e.State != spend.Committed || e.Tx != o.Tx {
			t.Fatalf("ledger entry for %s: %+v", o.Quote.Key, e)
		}
	}
	if s := sales(); len(s) != 2 || s[0].Stage != "sold" || s[0].Payer != m.buyer.Address().Hex() {
		t.Fatalf("sales %+v", s)
	}

	// Replay the first paid request's signature: refused, nothing moves.
	var paid http.Header
	for _, h := range rec.sent {
		if h.Get(HeaderSignature) != "" {
			paid = h
			break
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/feed/t1", nil)
	req.Header.Set(HeaderSignature, paid.Get(HeaderSignature))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var pr PaymentRequired
	decodeHeader(HeaderRequired, resp.Header.Get(HeaderRequired), &pr)
	if resp.StatusCode != http.StatusPaymentRequired || !strings.Contains(pr.Error, "already used") {
		t.Fatalf("replay: %d %q", resp.StatusCode, pr.Error)
	}
	if got := m.balance(t, m.seller); got != 2000 {
		t.Fatalf("seller holds %d after a replay, want 2000", got)
	}
	if s := sales(); s[len(s)-1].Stage != "replay" {
		t.Fatalf("replay not reported: %+v", s[len(s)-1])
	}
}

// TestFacilitatorRefusals sends payloads the facilitator must refuse.
func TestFacilitatorRefusals(t *testing.T) {
	m := newMarket(t)
	fac := NewLocal(m.facWallet, nil)
	offer, err := ParseOffer(2, m.price.requirements())
	if err != nil {
		t.Fatal(err)
	}
	good := func() (VerifyRequest, Auth) {
		a, _ := NewAuth(offer, m.buyer.Address(), time.Now(), time.Minute)
		p, err := SignAuth(m.buyer, offer, a)
		if err != nil {
			t.Fatal(err)
		}
		r := offer.Raw
		return VerifyRequest{X402Version: 2, PaymentPayload: PaymentPayload{X402Version: 2, Accepted: &r, Payload: p}, PaymentRequirements: offer.Raw}, a
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		mutate func(*VerifyRequest)
		reason string
	}{
		{"tampered value", func(r *VerifyRequest) {
			r.PaymentPayload.Payload.Authorization.Value = "1"
			r.PaymentRequirements.Amount = "1"
		}, ReasonSignature},
		{"other payee", func(r *VerifyRequest) {
			r.PaymentRequirements.PayTo = "0x0000000000000000000000000000000000000001"
		}, ReasonRecipient},
		{"wrong chain", func(r *VerifyRequest) { r.PaymentRequirements.Network = "eip155:1" }, ReasonNetwork},
		{"garbage signature", func(r *VerifyRequest) { r.PaymentPayload.Payload.Signature = "0x1234" }, ReasonSignature},
		{"expired", func(r *VerifyRequest) {
			a, _ := NewAuth(offer, m.buyer.Address(), time.Now().Add(-time.Hour), time.Minute)
			p, _ := SignAuth(m.buyer, offer, a)
			r.PaymentPayload.Payload = p
		}, ReasonExpired},
		{"no balance", func(r *VerifyRequest) {
			poor := importKey(t, m.dir, testchain.NewKey(t))
			a, _ := NewAuth(offer, poor.Address(), time.Now(), time.Minute)
			p, _ := SignAuth(poor, offer, a)
			r.PaymentPayload.Payload = p
		}, ReasonBalance},
		{"unsupported scheme", func(r *VerifyRequest) { r.PaymentRequirements.Scheme = "upto" }, ReasonScheme},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := good()
			tc.mutate(&req)
			vr, err := fac.Verify(ctx, req)
			if err != nil || vr.IsValid || vr.InvalidReason != tc.reason {
				t.Fatalf("verify: %+v %v, want reason %s", vr, err, tc.reason)
			}
			sr, err := fac.Settle(ctx, req)
			if err != nil || sr.Success || sr.ErrorReason != tc.reason {
				t.Fatalf("settle: %+v %v", sr, err)
			}
		})
	}
	// A good payment settles once; settling it again is idempotent and
	// moves nothing more.
	req, _ := good()
	sr, err := fac.Settle(ctx, req)
	if err != nil || !sr.Success {
		t.Fatalf("settle: %+v %v", sr, err)
	}
	sr2, err := fac.Settle(ctx, req)
	if err != nil || !sr2.Success || sr2.Transaction != sr.Transaction {
		t.Fatalf("second settle: %+v %v (first %s)", sr2, err, sr.Transaction)
	}
	if got := m.balance(t, m.seller); got != 1000 {
		t.Fatalf("seller holds %d, want 1000", got)
	}
}

// TestGarbageFacilitator: a facilitator answering nonsense costs the buyer
// nothing and the seller reports why.
func TestGarbageFacilitator(t *testing.T) {
	m := newMarket(t)
	for name, h := range map[string]http.HandlerFunc{
		"html":          func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>oops</html>") },
		"empty object":  func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") },
		"server error":  func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) },
		"wrong network": nil, // verify is real, settle claims success elsewhere
	} {
		t.Run(name, func(t *testing.T) {
			real := NewLocal(m.facWallet, nil)
			fs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if h == nil {
					if strings.HasSuffix(r.URL.Path, "/settle") {
						io.WriteString(w, `{"success":true,"transaction":"0x`+strings.Repeat("ab", 32)+`","network":"eip155:1"}`)
						return
					}
					real.ServeHTTP(w, r)
					return
				}
				h(w, r)
			}))
			defer fs.Close()
			srv, sales := m.sell(t, &HTTPFacilitator{URL: fs.URL}, nil)
			before := m.balance(t, m.buyer.Address())
			b := newBudget(t, m, 1e6)
			resp, err := m.client(t, b, nil).Get(srv.URL + "/feed")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
			if got := m.balance(t, m.buyer.Address()); got != before {
				t.Fatalf("buyer paid %d", before-got)
			}
			s := sales()
			if len(s) != 1 || !errors.Is(s[0].Err, ErrFacilitator) {
				t.Fatalf("sales %+v", s)
			}
			if len(b.last) != 1 || b.last[0].Settled || !b.last[0].Signed {
				t.Fatalf("outcome %+v", b.last)
			}
		})
	}
}

func TestHandlerFailureNotSettled(t *testing.T) {
	m := newMarket(t)
	srv, sales := m.sell(t, NewLocal(m.facWallet, nil), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "sensor offline", http.StatusServiceUnavailable)
	}))
	resp, err := m.client(t, newBudget(t, m, 1e6), nil).Get(srv.URL + "/feed")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(HeaderResponse) != "" {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := m.balance(t, m.seller); got != 0 {
		t.Fatalf("seller got %d for a failed read", got)
	}
	if s := sales(); len(s) != 1 || s[0].Stage != "handler" {
		t.Fatalf("sales %+v", s)
	}
}

// TestMalformedRequirements: 402 answers the client cannot pay are errors
// before anything is approved or signed.
func TestMalformedRequirements(t *testing.T) {
	good := Requirements{Scheme: "exact", Network: "eip155:3338", Asset: "0x0000000000000000000000000000000000000c0c", Amount: "10",
		PayTo: "0x00000000000000000000000000000000000000aa", MaxTimeoutSeconds: 60, Extra: map[string]any{"name": "T", "version": "2"}}
	with := func(f func(*Requirements)) string {
		r := good
		f(&r)
		h, _ := encodeHeader(PaymentRequired{X402Version: 2, Accepts: []Requirements{r}})
		return h
	}
	priv, _ := crypto.GenerateKey()
	signer := importKey(t, t.TempDir(), priv)
	for _, tc := range []struct {
		name, header, body, want string
	}{
		{"not base64", "%%%", "", "not base64"},
		{"not json", "bm90IGpzb24=", "", "not the expected JSON"},
		{"v1 body garbage", "", "<html>", "neither a PAYMENT-REQUIRED header nor a JSON body"},
		{"scheme", with(func(r *Requirements) { r.Scheme = "stream" }), "", `scheme "stream"`},
		{"upto without facilitator", with(func(r *Requirements) { r.Scheme = "upto" }), "", `extra.facilitatorAddress "" is not an address`},
		{"network", with(func(r *Requirements) { r.Network = "solana:mainnet" }), "", `network "solana:mainnet" is not an EVM network`},
		{"other chain", with(func(r *Requirements) { r.Network = "eip155:1" }), "", "chain 1 is not one this agent pays on"},
		{"amount", with(func(r *Requirements) { r.Amount = "-5" }), "", `requirements.amount "-5" is not a positive integer`},
		{"payTo", with(func(r *Requirements) { r.PayTo = "bob" }), "", `requirements.payTo "bob"`},
		{"no domain", with(func(r *Requirements) { r.Extra = nil }), "", "EIP-712 name and version"},
		{"no accepts", func() string { h, _ := encodeHeader(PaymentRequired{X402Version: 2}); return h }(), "", "lists no way to pay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set(HeaderRequired, tc.header)
				}
				w.WriteHeader(402)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			asked := false
			tr, _ := NewTransport(TransportConfig{Signer: signer, Chains: []uint64{3338},
				Approve: func(context.Context, Quote) (func(Outcome), error) { asked = true; return func(Outcome) {}, nil }})
			_, err := (&http.Client{Transport: tr}).Get(srv.URL)
			var pe *PaymentError
			if !errors.As(err, &pe) || pe.Stage != "requirements" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if asked {
				t.Fatal("the policy was asked about an unpayable 402")
			}
		})
	}
}

// TestV1Fallback pays a server that speaks x402 version 1: requirements in
// the 402 body, the payment in X-PAYMENT, network by name ("peaq").
func TestV1Fallback(t *testing.T) {
	m := newMarket(t)
	fac := NewLocal(m.facWallet, nil)
	req := Requirements{Scheme: "exact", Network: "peaq", MaxAmountRequired: "700", Resource: "http://x/feed", Asset: m.token.Hex(),
		PayTo: m.seller.Hex(), MaxTimeoutSeconds: 60, Extra: map[string]any{"name": "Test USD", "version": "2"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get(HeaderPaymentV1)
		if h == "" {
			writeJSON(w, 402, PaymentRequired{X402Version: 1, Error: "X-PAYMENT header is required", Accepts: []Requirements{req}})
			return
		}
		var p PaymentPayload
		if err := decodeHeader(HeaderPaymentV1, h, &p); err != nil || p.X402Version != 1 || p.Network != "peaq" {
			http.Error(w, fmt.Sprint("bad v1 payload ", err), 400)
			return
		}
		sr, err := fac.Settle(r.Context(), VerifyRequest{X402Version: 1, PaymentPayload: p, PaymentRequirements: req})
		if err != nil || !sr.Success {
			http.Error(w, fmt.Sprint("settle ", sr, err), 402)
			return
		}
		v, _ := encodeHeader(sr)
		w.Header().Set(HeaderRespV1, v)
		io.WriteString(w, "paid")
	}))
	defer srv.Close()
	b := newBudget(t, m, 1e6)
	resp, err := m.client(t, b, nil).Get(srv.URL + "/feed")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "paid" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if len(b.last) != 1 || !b.last[0].Settled {
		t.Fatalf("outcome %+v", b.last)
	}
	if got := m.balance(t, m.seller); got != 700 {
		t.Fatalf("seller holds %d, want 700", got)
	}
}

// TestConcurrentBuyersNoOverspend: 32 requests at once against a budget
// that fits 10 of them: exactly 10 are paid, the seller receives exactly
// that, and the other 22 are refused by the policy before signing.
func TestConcurrentBuyersNoOverspend(t *testing.T) {
	m := newMarket(t)
	srv, _ := m.sell(t, &HTTPFacilitator{URL: m.facURL}, nil)
	b := newBudget(t, m, 10*m.price.Amount.Int64())
	hc := m.client(t, b, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	paid, refused := 0, 0
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get(srv.URL + "/feed")
			mu.Lock()
			defer mu.Unlock()
			var pe *PaymentError
			switch {
			case err == nil && resp.StatusCode == 200:
				paid++
				resp.Body.Close()
			case errors.As(err, &pe) && pe.Stage == "policy":
				refused++
			default:
				t.Errorf("unexpected %v %v", resp, err)
			}
		}()
	}
	wg.Wait()
	if paid != 10 || refused != 22 {
		t.Fatalf("paid %d refused %d, want 10 and 22", paid, refused)
	}
	if got := m.balance(t, m.seller); got != 10*m.price.Amount.Int64() {
		t.Fatalf("seller holds %d, want %d", got, 10*m.price.Amount.Int64())
	}
}
