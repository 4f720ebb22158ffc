package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/x402"
	"github.com/depai/depai/sdk/wire"
)

// Payments is the agent's wallet as its plugins reach it — pay.quote,
// pay.execute, and x402 payments inside http.fetch. The keys stay behind it:
// a plugin gets decisions and receipts. Every payment is an action with the
// payment effect and a policy.Payment in its Args, so the Gate's spend
// policy decides, reserves and audits it.
type Payments struct {
	// Wallet pays pay.execute and answers pay.quote. Nil: Connect is asked.
	Wallet *wallet.Client
	// Connect returns the wallet once its node is reachable, or why it is
	// not (the core keeps dialling an RPC that was down at start); used
	// when Wallet is nil.
	Connect func() (*wallet.Client, error)
	// ChainID is the chain the wallet pays on, for x402 offers while the
	// wallet is not connected; 0: Wallet's.
	ChainID uint64
	// Signer signs x402 authorizations (the wallet's key). Nil: a plugin's
	// fetch that meets a 402 gets the 402.
	Signer wallet.Signer
}

// wallet returns the wallet to pay with, or why there is none.
func (p *Payments) wallet() (*wallet.Client, error) {
	switch {
	case p.Wallet != nil:
		return p.Wallet, nil
	case p.Connect != nil:
		return p.Connect()
	}
	return nil, errors.New("no wallet is configured")
}

// Quoter is a Gate that also decides a payment without making it, on the
// record (policy.Engine is one): what pay.quote answers.
type Quoter interface {
	Quote(ctx context.Context, a policy.Action) (policy.Decision, error)
}

// payKey scopes a plugin's idempotency key to the plugin, so two plugins
// cannot collide — or answer for each other's payments.
func payKey(plugin, key string) string { return "plugin:" + plugin + ":" + key }

// payment checks a plugin's pay arguments and turns them into the policy's
// Payment and the wallet's Transfer on chain.
func payment(plugin string, chain uint64, method string, a wire.PayArgs) (policy.Payment, wallet.Transfer, *wire.Error) {
	bad := func(format string, args ...any) (policy.Payment, wallet.Transfer, *wire.Error) {
		return policy.Payment{}, wallet.Transfer{}, wire.Errorf(wire.CodeInvalidArgument, method+": "+format, args...)
	}
	if method == wire.HostPayExecute && a.Key == "" {
		return bad("key is required: an idempotency key makes a retried payment safe")
	}
	if len(a.Key) > 200 {
		return bad("key is %d bytes, more than 200", len(a.Key))
	}
	if !common.IsHexAddress(a.To) || !strings.HasPrefix(strings.ToLower(a.To), "0x") {
		return bad("to %q is not a 0x-prefixed 20-byte hex address", a.To)
	}
	amount, ok := new(big.Int).SetString(a.Amount, 10)
	if !ok || amount.Sign() <= 0 || amount.BitLen() > 256 {
		return bad("amount %q is not a positive decimal integer (the asset's smallest unit)", a.Amount)
	}
	asset, native := wallet.Native, a.Asset == "" || a.Asset == "native"
	if !native {
		if !common.IsHexAddress(a.Asset) || !strings.HasPrefix(strings.ToLower(a.Asset), "0x") {
			return bad("asset %q is neither \"native\" nor a token contract's 0x… address", a.Asset)
		}
		asset = common.HexToAddress(a.Asset)
	}
	assetName := "native"
	if !native {
		assetName = asset.Hex()
	}
	key := payKey(plugin, a.Key)
	p := policy.Payment{Key: key, Chain: chain, Asset: assetName, Payee: common.HexToAddress(a.To).Hex(), Amount: amount.String(), Purpose: a.Purpose}
	if a.Key == "" {
		p.Key = "quote" // a quote reserves nothing; the key only has to be well formed
	}
	return p, wallet.Transfer{Key: key, Asset: asset, To: common.HexToAddress(a.To), Amount: amount}, nil
}

// pay serves pay.quote and pay.execute for a plugin granted payment.
func (h *Host) pay(ctx context.Context, g *grant, method string, payload []byte) ([]byte, *wire.Error) {
	if h.cfg.Payments == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "%s: this agent has no wallet (configure wallet: {chain_id, rpc} and safety.spend)", method)
	}
	w, err := h.cfg.Payments.wallet()
	if err != nil {
		return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s: the wallet is not available: %v; nothing was paid", method, err), Retryable: true}
	}
	var a wire.PayArgs
	if werr := decode(method, payload, &a); werr != nil {
		return nil, werr
	}
	p, t, werr := payment(g.spec.Name, w.ChainID(), method, a)
	if werr != nil {
		return nil, werr
	}
	args, _ := json.Marshal(p)
	if method == wire.HostPayQuote {
		d := policy.Decision{Verdict: policy.Allow, Reason: "no policy gate"}
		if q, ok := h.cfg.Gate.(Quoter); ok {
			var err error
			if d, err = q.Quote(ctx, action(h.cfg.Agent, g.spec.Name, method, p.Payee, wire.EffectPayment, args)); err != nil {
				return nil, wire.Errorf(wire.CodeUnavailable, "%s: %v", method, err)
			}
		}
		bal, err := w.Balance(ctx, t.Asset)
		if err != nil {
			return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s: balance: %v", method, err), Retryable: true}
		}
		return encode(wire.PayQuote{Chain: p.Chain, From: w.Address().Hex(), To: p.Payee, Asset: p.Asset, Amount: p.Amount,
			Balance: bal.String(), Decision: string(d.Verdict), Reason: d.Reason})
	}
	done, werr := h.authorize(ctx, g, method, p.Payee, wire.EffectPayment, args)
	if werr != nil {
		return nil, werr
	}
	r, err := w.Pay(ctx, t)
	if err != nil {
		werr, outcome := payError(method, err)
		done(nil, outcome)
		return nil, werr
	}
	rc := wire.PayReceipt{Key: a.Key, Chain: p.Chain, Tx: r.TxHash.Hex(), Block: r.Block, From: w.Address().Hex(), To: p.Payee, Asset: p.Asset, Amount: p.Amount, Reused: r.Reused}
	out, werr := encode(rc)
	done(out, nil)
	return out, werr
}

// payError maps a wallet failure to what the plugin is told and what the
// policy's outcome is: a failure that certainly moved no money is NotPaid,
// which frees its room under the caps; an unsure one keeps it.
func payError(method string, err error) (*wire.Error, error) {
	we := &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s: %v", method, err)}
	switch {
	case errors.Is(err, wallet.ErrPending):
		we.Code, we.Retryable = wire.CodeTimeout, true
		we.Message += " (retry with the same key: it is never paid twice)"
		return we, we
	case errors.Is(err, wallet.ErrReverted), errors.Is(err, wallet.ErrAbandoned), errors.Is(err, wallet.ErrNotSent), errors.Is(err, wallet.ErrFeeCap):
		we.Message += "; nothing was paid"
		return we, policy.NotPaid(we)
	case errors.Is(err, wallet.ErrKeyConflict):
		we.Code = wire.CodeInvalidArgument
		return we, policy.NotPaid(we)
	}
	we.Retryable = true
	return we, we
}

// x402Client wraps a granted plugin's fetch transport so that a 402 is paid
// within the spend policy; nil when the agent cannot sign.
func (h *Host) x402Client(g *grant, base http.RoundTripper) (http.RoundTripper, error) {
	p := h.cfg.Payments
	if p == nil || p.Signer == nil || !g.spec.Grants.Payment {
		return base, nil
	}
	var chains []uint64
	switch {
	case p.Wallet != nil:
		chains = []uint64{p.Wallet.ChainID()}
	case p.ChainID != 0:
		chains = []uint64{p.ChainID}
	}
	return x402.NewTransport(x402.TransportConfig{Base: base, Signer: p.Signer, Chains: chains, Now: h.cfg.Now,
		Approve: func(ctx context.Context, q x402.Quote) (func(x402.Outcome), error) {
			args, _ := json.Marshal(policy.Payment{Key: payKey(g.spec.Name, q.Key), Chain: q.Offer.ChainID, Asset: q.Offer.Asset.Hex(),
				Payee: q.Offer.PayTo.Hex(), Amount: q.Offer.Amount.String(), Purpose: "x402 " + q.URL})
			done, werr := h.authorize(ctx, g, "x402.pay", q.Offer.PayTo.Hex(), wire.EffectPayment, args)
			if werr != nil {
				return nil, werr
			}
			return func(o x402.Outcome) { done(x402Outcome(o)) }, nil
		}})
}

// x402Outcome is the policy's view of an x402 payment: served with a
// settlement (or served at all — the seller may settle later) counts as
// paid; an authorization never signed is not paid; one signed and refused
// stays counted, because the seller can still settle it until it expires.
func x402Outcome(o x402.Outcome) (json.RawMessage, error) {
	switch {
	case !o.Signed:
		return nil, policy.NotPaid(fmt.Errorf("x402: nothing was signed: %v", o.Err))
	case o.Status > 0 && o.Status < 400:
		res := map[string]any{"tx": o.Tx, "settled": o.Settled, "payer": o.Payer, "status": o.Status, "scheme": o.Quote.Offer.Scheme}
		if o.Amount != nil {
			// An upto payment: the ledger counts what was settled, not
			// the maximum it reserved.
			res["amount"] = o.Amount.String()
		}
		b, _ := json.Marshal(res)
		return b, nil
	}
	msg := fmt.Sprintf("x402: the seller did not serve the paid request (status %d, %s); the authorization stays counted until it expires at %s", o.Status, o.Refusal, o.ValidBefore.UTC().Format("15:04:05Z"))
	if o.Err != nil {
		msg += ": " + o.Err.Error()
	}
	return nil, &wire.Error{Code: wire.CodeUnavailable, Message: msg}
}

// fetchPayError is what a plugin's fetch is told when its 402 was not paid.
func fetchPayError(err error) (*wire.Error, bool) {
	pe, ok := errors.AsType[*x402.PaymentError](err)
	if !ok {
		return nil, false
	}
	if we, ok := errors.AsType[*wire.Error](pe.Err); ok && pe.Stage == "policy" {
		return &wire.Error{Code: we.Code, Message: fmt.Sprintf("%s: x402 payment for %s refused: %s", wire.HostHTTPFetch, pe.URL, we.Message)}, true
	}
	code := wire.CodeUnavailable
	if pe.Stage == "requirements" {
		code = wire.CodeInvalidArgument
	}
	return &wire.Error{Code: code, Message: fmt.Sprintf("%s: %v", wire.HostHTTPFetch, pe)}, true
}
