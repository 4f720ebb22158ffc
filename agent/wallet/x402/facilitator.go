package x402

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/depai/depai/agent/wallet"
)

// Facilitator verifies and settles payments for a seller.
type Facilitator interface {
	Verify(ctx context.Context, req VerifyRequest) (VerifyResponse, error)
	Settle(ctx context.Context, req VerifyRequest) (SettleResponse, error)
	Supported(ctx context.Context) (SupportedResponse, error)
}

// ErrFacilitator wraps every answer from a facilitator that is not a
// well-formed x402 answer (transport errors, wrong status, garbage).
var ErrFacilitator = errors.New("x402: facilitator failed")

// HTTPFacilitator is a remote facilitator reached over HTTP.
type HTTPFacilitator struct {
	URL    string       // base URL; /verify, /settle and /supported are appended
	Client *http.Client // nil means a client with a 30 s timeout
}

var _ Facilitator = (*HTTPFacilitator)(nil)

func (f *HTTPFacilitator) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(f.URL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFacilitator, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := f.Client
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFacilitator, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxHeader))
	if err != nil {
		return fmt.Errorf("%w: %s: read: %v", ErrFacilitator, path, err)
	}
	// A refusal comes with 400 and a well-formed body; anything else that
	// is not 200 is a failure of the facilitator itself.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest {
		return fmt.Errorf("%w: %s answered %s: %.200s", ErrFacilitator, path, resp.Status, raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%w: %s answered %s with a body that is not the expected JSON: %v: %.200q", ErrFacilitator, path, resp.Status, err, raw)
	}
	return nil
}

// requireFields fails unless every named top-level field is in raw JSON.
func requireFields(raw json.RawMessage, path string, names ...string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFacilitator, path, err)
	}
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return fmt.Errorf("%w: %s answer has no %q field: %.200s", ErrFacilitator, path, n, raw)
		}
	}
	return nil
}

// Verify calls POST /verify.
func (f *HTTPFacilitator) Verify(ctx context.Context, req VerifyRequest) (VerifyResponse, error) {
	var raw json.RawMessage
	if err := f.do(ctx, http.MethodPost, "/verify", req, &raw); err != nil {
		return VerifyResponse{}, err
	}
	if err := requireFields(raw, "/verify", "isValid"); err != nil {
		return VerifyResponse{}, err
	}
	var vr VerifyResponse
	if err := json.Unmarshal(raw, &vr); err != nil {
		return vr, fmt.Errorf("%w: /verify: %v", ErrFacilitator, err)
	}
	return vr, nil
}

var txHash = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^0x[0-9a-fA-F]{64}$`) }) // compiled at the first settlement, not at every start ({64} makes a large program)

// Settle calls POST /settle. A success must name a transaction hash on the
// requirement's network.
func (f *HTTPFacilitator) Settle(ctx context.Context, req VerifyRequest) (SettleResponse, error) {
	var raw json.RawMessage
	if err := f.do(ctx, http.MethodPost, "/settle", req, &raw); err != nil {
		return SettleResponse{}, err
	}
	if err := requireFields(raw, "/settle", "success"); err != nil {
		return SettleResponse{}, err
	}
	var sr SettleResponse
	if err := json.Unmarshal(raw, &sr); err != nil {
		return sr, fmt.Errorf("%w: /settle: %v", ErrFacilitator, err)
	}
	if sr.Success {
		if !txHash().MatchString(sr.Transaction) {
			return sr, fmt.Errorf("%w: /settle reports success with transaction %q, not a transaction hash", ErrFacilitator, sr.Transaction)
		}
		if sr.Network != req.PaymentRequirements.Network {
			return sr, fmt.Errorf("%w: /settle reports success on network %q, the payment was on %q", ErrFacilitator, sr.Network, req.PaymentRequirements.Network)
		}
	}
	return sr, nil
}

// Supported calls GET /supported.
func (f *HTTPFacilitator) Supported(ctx context.Context) (SupportedResponse, error) {
	var raw json.RawMessage
	if err := f.do(ctx, http.MethodGet, "/supported", nil, &raw); err != nil {
		return SupportedResponse{}, err
	}
	if err := requireFields(raw, "/supported", "kinds"); err != nil {
		return SupportedResponse{}, err
	}
	var s SupportedResponse
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("%w: /supported: %v", ErrFacilitator, err)
	}
	return s, nil
}

// tokenABI is the EIP-3009 subset the facilitator calls, parsed on first
// use rather than at every start of a program that links the agent.
var tokenABI = sync.OnceValue(func() abi.ABI {
	a, err := abi.JSON(strings.NewReader(`[
 {"type":"function","name":"transferWithAuthorization","stateMutability":"nonpayable","outputs":[],"inputs":[
  {"name":"from","type":"address"},{"name":"to","type":"address"},{"name":"value","type":"uint256"},
  {"name":"validAfter","type":"uint256"},{"name":"validBefore","type":"uint256"},{"name":"nonce","type":"bytes32"},
  {"name":"v","type":"uint8"},{"name":"r","type":"bytes32"},{"name":"s","type":"bytes32"}]},
 {"type":"function","name":"authorizationState","stateMutability":"view","outputs":[{"name":"","type":"bool"}],"inputs":[
  {"name":"authorizer","type":"address"},{"name":"nonce","type":"bytes32"}]},
 {"type":"function","name":"balanceOf","stateMutability":"view","outputs":[{"name":"","type":"uint256"}],"inputs":[{"name":"account","type":"address"}]}
]`))
	if err != nil {
		panic(err) // constant
	}
	return a
})

// Invalid reasons, as @x402/evm names them.
const (
	ReasonScheme        = "invalid_exact_evm_scheme"
	ReasonNetwork       = "invalid_exact_evm_network_mismatch"
	ReasonDomain        = "invalid_exact_evm_missing_eip712_domain"
	ReasonRecipient     = "invalid_exact_evm_recipient_mismatch"
	ReasonSignature     = "invalid_exact_evm_signature"
	ReasonExpired       = "invalid_exact_evm_payload_authorization_valid_before"
	ReasonNotYetValid   = "invalid_exact_evm_payload_authorization_valid_after"
	ReasonValue         = "invalid_exact_evm_payload_authorization_value_mismatch"
	ReasonNonceUsed     = "invalid_exact_evm_nonce_already_used"
	ReasonBalance       = "invalid_exact_evm_insufficient_balance"
	ReasonSimulation    = "invalid_exact_evm_transaction_simulation_failed"
	ReasonTxFailed      = "invalid_exact_evm_transaction_failed"
	ReasonPayload       = "invalid_payload"
	ReasonAssetMismatch = "invalid_exact_evm_asset_mismatch"
)

// Local is a facilitator that verifies EIP-712 signatures itself and
// settles by sending transferWithAuthorization from its own wallet (which
// pays the gas). It is an http.Handler serving /verify, /settle and
// /supported, and a Facilitator for an in-process Paywall.
type Local struct {
	w   *wallet.Client
	now func() time.Time
}

var (
	_ Facilitator  = (*Local)(nil)
	_ http.Handler = (*Local)(nil)
)

// NewLocal returns a facilitator settling on w's chain; now nil means
// time.Now.
func NewLocal(w *wallet.Client, now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	return &Local{w: w, now: now}
}

type checked struct {
	offer Offer
	auth  Auth
	sig   []byte
	payer common.Address
}

// check verifies a payment; a non-empty reason refuses it. full adds the
// balance check and a simulation of the transfer (settling skips them: the
// wallet's gas estimate simulates the transaction before anything is sent).
func (l *Local) check(ctx context.Context, req VerifyRequest, full bool) (checked, string, string) {
	var c checked
	r := req.PaymentRequirements
	version := req.X402Version
	if version == 0 {
		version = req.PaymentPayload.X402Version
	}
	if r.Scheme != SchemeExact {
		return c, ReasonScheme, fmt.Sprintf("scheme %q: this facilitator settles %q only", r.Scheme, SchemeExact)
	}
	o, err := ParseOffer(version, r)
	if err != nil {
		if errors.Is(err, ErrUnsupported) {
			return c, ReasonNetwork, err.Error()
		}
		if strings.Contains(err.Error(), "extra") {
			return c, ReasonDomain, err.Error()
		}
		return c, ReasonPayload, err.Error()
	}
	c.offer = o
	if o.ChainID != l.w.ChainID() {
		return c, ReasonNetwork, fmt.Sprintf("this facilitator settles on chain %d, not %d", l.w.ChainID(), o.ChainID)
	}
	p := req.PaymentPayload
	if version == 1 && (p.Scheme != r.Scheme || p.Network != r.Network) {
		return c, ReasonNetwork, fmt.Sprintf("payload is for %s on %s, requirements for %s on %s", p.Scheme, p.Network, r.Scheme, r.Network)
	}
	if version == 2 && p.Accepted != nil && (p.Accepted.Network != r.Network || !strings.EqualFold(p.Accepted.Asset, r.Asset)) {
		return c, ReasonNetwork, "payload.accepted does not match the requirements"
	}
	a, who, err := Recover(o, p.Payload)
	if err != nil {
		if strings.Contains(err.Error(), "authorization.") {
			return c, ReasonPayload, err.Error()
		}
		return c, ReasonSignature, err.Error()
	}
	c.auth, c.payer = a, a.From
	if who != a.From {
		return c, ReasonSignature, fmt.Sprintf("signed by %s, not by authorization.from %s", who, a.From)
	}
	if a.To != o.PayTo {
		return c, ReasonRecipient, fmt.Sprintf("authorization pays %s, the requirements %s", a.To, o.PayTo)
	}
	if a.Value.Cmp(o.Amount) != 0 {
		return c, ReasonValue, fmt.Sprintf("authorization value %s, required %s", a.Value, o.Amount)
	}
	now := l.now().Unix()
	if a.ValidBefore.Cmp(big.NewInt(now+6)) < 0 {
		return c, ReasonExpired, fmt.Sprintf("validBefore %s is less than 6 s from now (%d)", a.ValidBefore, now)
	}
	if a.ValidAfter.Cmp(big.NewInt(now)) > 0 {
		return c, ReasonNotYetValid, fmt.Sprintf("validAfter %s is in the future (now %d)", a.ValidAfter, now)
	}
	c.sig, _ = hexutil.Decode(p.Payload.Signature)
	if used, err := AuthorizationUsed(ctx, l.w, o.Asset, a); err != nil {
		return c, ReasonSimulation, err.Error()
	} else if used {
		return c, ReasonNonceUsed, "the token reports this authorization's nonce as used"
	}
	if !full {
		return c, "", ""
	}
	bal, err := l.w.BalanceOf(ctx, o.Asset, a.From)
	if err != nil {
		return c, ReasonSimulation, err.Error()
	}
	if bal.Cmp(a.Value) < 0 {
		return c, ReasonBalance, fmt.Sprintf("payer holds %s, the payment is %s", bal, a.Value)
	}
	if _, err := l.w.Read(ctx, o.Asset, l.calldata(c)); err != nil {
		return c, ReasonSimulation, err.Error()
	}
	return c, "", ""
}

func (l *Local) calldata(c checked) []byte {
	var r, s [32]byte
	copy(r[:], c.sig[:32])
	copy(s[:], c.sig[32:64])
	v := c.sig[64]
	if v < 27 {
		v += 27
	}
	data, err := tokenABI().Pack("transferWithAuthorization", c.auth.From, c.auth.To, c.auth.Value, c.auth.ValidAfter, c.auth.ValidBefore, c.auth.Nonce, v, r, s)
	if err != nil {
		panic(err) // typed arguments
	}
	return data
}

// Verify checks the payment without moving money.
func (l *Local) Verify(ctx context.Context, req VerifyRequest) (VerifyResponse, error) {
	c, reason, msg := l.check(ctx, req, true)
	if reason != "" {
		return VerifyResponse{IsValid: false, InvalidReason: reason, InvalidMessage: msg, Payer: hexOrEmpty(c.payer)}, nil
	}
	return VerifyResponse{IsValid: true, Payer: c.payer.Hex()}, nil
}

// Settle verifies again and submits transferWithAuthorization, waiting for
// its receipt. The wallet's idempotency key is the authorization itself, so
// a retried settle never submits twice.
func (l *Local) Settle(ctx context.Context, req VerifyRequest) (SettleResponse, error) {
	network := req.PaymentRequirements.Network
	key := ""
	c, reason, msg := l.check(ctx, req, false)
	if reason == ReasonNonceUsed {
		// Perhaps settled by us before: the journal knows.
		key = "x402-settle:" + ReplayKey(c.offer.ChainID, c.offer.Asset, c.auth)
		if r, ok := l.w.Lookup(key); ok && r.Status == 1 {
			return SettleResponse{Success: true, Transaction: r.TxHash.Hex(), Network: network, Payer: c.payer.Hex()}, nil
		}
	}
	if reason != "" {
		return SettleResponse{Success: false, ErrorReason: reason, ErrorMessage: msg, Network: network, Payer: hexOrEmpty(c.payer)}, nil
	}
	key = "x402-settle:" + ReplayKey(c.offer.ChainID, c.offer.Asset, c.auth)
	r, err := l.w.Send(ctx, wallet.Call{Key: key, To: c.offer.Asset, Data: l.calldata(c)})
	if err != nil {
		if errors.Is(err, wallet.ErrNotSent) {
			// The estimate (a simulation) failed: say why, as verify would.
			if _, reason, msg := l.check(ctx, req, true); reason != "" {
				return SettleResponse{Success: false, ErrorReason: reason, ErrorMessage: msg, Network: network, Payer: c.payer.Hex()}, nil
			}
			return SettleResponse{Success: false, ErrorReason: ReasonSimulation, ErrorMessage: err.Error(), Network: network, Payer: c.payer.Hex()}, nil
		}
		var rev *wallet.RevertedError
		if errors.As(err, &rev) {
			return SettleResponse{Success: false, ErrorReason: ReasonTxFailed, ErrorMessage: err.Error(), Transaction: rev.Receipt.TxHash.Hex(), Network: network, Payer: c.payer.Hex()}, nil
		}
		return SettleResponse{}, fmt.Errorf("x402: settle: %w", err)
	}
	return SettleResponse{Success: true, Transaction: r.TxHash.Hex(), Network: network, Payer: c.payer.Hex()}, nil
}

func hexOrEmpty(a common.Address) string {
	if a == (common.Address{}) {
		return ""
	}
	return a.Hex()
}

// Supported lists exact on the wallet's chain, v1 and v2.
func (l *Local) Supported(context.Context) (SupportedResponse, error) {
	n := Network(l.w.ChainID())
	return SupportedResponse{
		Kinds:      []SupportedKind{{X402Version: 2, Scheme: SchemeExact, Network: n}, {X402Version: 1, Scheme: SchemeExact, Network: n}},
		Extensions: []string{},
		Signers:    map[string][]string{"eip155:*": {l.w.Address().Hex()}},
	}, nil
}

// ServeHTTP serves POST /verify, POST /settle and GET /supported.
func (l *Local) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	var out any
	var err error
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/supported"):
		out, err = l.Supported(r.Context())
	case r.Method == http.MethodPost && (strings.HasSuffix(path, "/verify") || strings.HasSuffix(path, "/settle")):
		var req VerifyRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxHeader))
		if derr := dec.Decode(&req); derr != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"isValid": false, "success": false, "invalidReason": ReasonPayload, "errorReason": ReasonPayload, "invalidMessage": derr.Error()})
			return
		}
		if strings.HasSuffix(path, "/verify") {
			out, err = l.Verify(r.Context(), req)
		} else {
			out, err = l.Settle(r.Context(), req)
		}
	default:
		http.Error(w, "x402 facilitator: POST /verify, POST /settle, GET /supported", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
