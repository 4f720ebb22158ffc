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
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/depai/depai/agent/wallet"
)

// Quote is what a server asks to be paid, shown to the policy before
// anything is signed.
type Quote struct {
	URL      string
	Resource *ResourceInfo
	Offer    Offer
	// Key is unique to this payment attempt (the authorization's nonce in
	// hex): the spend ledger's idempotency key.
	Key string
}

// Outcome is what became of an approved payment. The core commits or
// releases its spend reservation from it.
type Outcome struct {
	Quote Quote
	// Signed: an authorization left this process; the seller can settle it
	// until ValidBefore even if this request failed.
	Signed      bool
	ValidBefore time.Time
	Auth        Auth     // the exact scheme's authorization
	Upto        UptoAuth // the upto scheme's authorization
	// Amount is what an upto payment settled (nil: the offer's amount, or
	// not reported). It is never above the authorized maximum: a seller
	// reporting more is an error in Err.
	Amount *big.Int
	// Settled: the seller reported a successful settlement in Tx.
	Settled bool
	Tx      string
	Payer   string
	// Status is the HTTP status of the paid retry; 0 if it was not answered.
	Status int
	// Refusal is the seller's reason when it answered 402 to the payment.
	Refusal string
	Err     error
}

// Approver is the policy's say over a payment: return a non-nil error to
// refuse (nothing is signed). On approval it returns done, which is called
// exactly once with the outcome.
type Approver func(ctx context.Context, q Quote) (done func(Outcome), err error)

// TransportConfig configures a Transport.
type TransportConfig struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Signer signs authorizations (the agent's wallet key).
	Signer wallet.Signer
	// Approve is asked before every payment; required.
	Approve Approver
	// Chains lists the chain ids the agent can pay on, in order of
	// preference; the first offer on one of them is chosen. Empty: any.
	Chains []uint64
	// Validity bounds how long an authorization is valid (and so how long
	// a seller may sit on it); 0 means 2 minutes. Never more than the
	// offer's maxTimeoutSeconds.
	Validity time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Transport is an http.RoundTripper that pays x402 402 answers within the
// policy. A request with a body is retried only if it has GetBody (every
// request made with http.NewRequest from a bytes or strings reader has).
type Transport struct{ cfg TransportConfig }

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport checks cfg and returns a Transport.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if cfg.Signer == nil || cfg.Approve == nil {
		return nil, errors.New("x402: TransportConfig needs a Signer and an Approve callback")
	}
	if cfg.Base == nil {
		cfg.Base = http.DefaultTransport
	}
	if cfg.Validity <= 0 {
		cfg.Validity = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Transport{cfg: cfg}, nil
}

// PaymentError says a 402 was not paid, or was paid and not served. Stage is
// "requirements" (malformed or unsupported 402), "policy" (refused), "sign"
// or "retry" (the paid request failed; see Outcome).
type PaymentError struct {
	URL     string
	Stage   string
	Quote   *Quote
	Outcome *Outcome
	Err     error
}

func (e *PaymentError) Error() string {
	return fmt.Sprintf("x402: paying for %s (%s): %v", e.URL, e.Stage, e.Err)
}
func (e *PaymentError) Unwrap() error { return e.Err }

// RoundTrip sends req; on a 402 it pays (if the policy approves) and retries
// once. The retried request's response is returned as is, including a
// second 402 if the seller refused the payment.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get(HeaderSignature) != "" || req.Header.Get(HeaderPaymentV1) != "" {
		return t.cfg.Base.RoundTrip(req) // already paid by the caller
	}
	resp, err := t.cfg.Base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusPaymentRequired {
		return resp, err
	}
	url := req.URL.String()
	fail := func(stage string, q *Quote, err error) (*http.Response, error) {
		return nil, &PaymentError{URL: url, Stage: stage, Quote: q, Err: err}
	}
	pr, err := readRequired(resp)
	if err != nil {
		return fail("requirements", nil, err)
	}
	offer, err := t.choose(pr)
	if err != nil {
		return fail("requirements", nil, err)
	}
	if req.Body != nil && req.GetBody == nil {
		return fail("requirements", nil, errors.New("the request body cannot be replayed (no GetBody), so it cannot be retried with a payment"))
	}
	var (
		auth  Auth
		upto  UptoAuth
		q     = Quote{URL: url, Resource: pr.Resource, Offer: offer}
		until time.Time
	)
	if offer.Scheme == SchemeUpto {
		if upto, err = NewUptoAuth(offer, t.cfg.Signer.Address(), t.cfg.Now(), t.cfg.Validity); err != nil {
			return fail("sign", nil, err)
		}
		q.Key, until = "x402:upto:"+upto.Nonce.Text(16), time.Unix(upto.Deadline.Int64(), 0)
	} else {
		if auth, err = NewAuth(offer, t.cfg.Signer.Address(), t.cfg.Now(), t.cfg.Validity); err != nil {
			return fail("sign", nil, err)
		}
		q.Key, until = "x402:"+hexutil.Encode(auth.Nonce[:]), time.Unix(auth.ValidBefore.Int64(), 0)
	}
	// The policy decides on the offer's amount: upto's maximum.
	done, err := t.cfg.Approve(req.Context(), q)
	if err != nil {
		return fail("policy", &q, err) // nothing was signed
	}
	out := Outcome{Quote: q, Auth: auth, Upto: upto, ValidBefore: until}
	defer func() { done(out) }()
	var payload ExactPayload
	if offer.Scheme == SchemeUpto {
		payload, err = SignUpto(t.cfg.Signer, offer.ChainID, upto)
	} else {
		payload, err = SignAuth(t.cfg.Signer, offer, auth)
	}
	if err != nil {
		out.Err = err
		return fail("sign", &q, err)
	}

	var header, value string
	if offer.Version == 1 {
		header = HeaderPaymentV1
		value, err = encodeHeader(PaymentPayload{X402Version: 1, Scheme: offer.Raw.Scheme, Network: offer.Raw.Network, Payload: payload})
	} else {
		header = HeaderSignature
		raw := offer.Raw
		value, err = encodeHeader(PaymentPayload{X402Version: pr.X402Version, Resource: pr.Resource, Accepted: &raw, Payload: payload})
	}
	if err != nil {
		out.Err = err
		return fail("sign", &q, err)
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			out.Err = err
			return fail("retry", &q, err)
		}
	}
	retry.Header.Set(header, value)
	out.Signed = true
	resp2, err := t.cfg.Base.RoundTrip(retry)
	if err != nil {
		out.Err = err
		oc := out
		return nil, &PaymentError{URL: url, Stage: "retry", Quote: &q, Outcome: &oc, Err: fmt.Errorf("the paid request failed; the authorization may still be settled until %s: %w", out.ValidBefore.UTC().Format(time.RFC3339), err)}
	}
	out.Status = resp2.StatusCode
	if sr, ok, err := readSettle(resp2, offer.Version); err != nil {
		out.Err = err
	} else if ok {
		out.Settled, out.Tx, out.Payer = sr.Success, sr.Transaction, sr.Payer
		if !sr.Success {
			out.Refusal = sr.ErrorReason
		}
		if offer.Scheme == SchemeUpto && sr.Success && sr.Amount != "" {
			// What the seller says it took; above the maximum it cannot
			// have taken it (Permit2 refuses), so it is reported, and the
			// whole maximum stays counted.
			if a, ok := new(big.Int).SetString(sr.Amount, 10); !ok || a.Sign() < 0 || a.Cmp(offer.Amount) > 0 {
				out.Err = fmt.Errorf("x402: the seller reports settling %q of an upto payment of at most %s", sr.Amount, offer.Amount)
			} else {
				out.Amount = a
			}
		}
	}
	if resp2.StatusCode == http.StatusPaymentRequired {
		if pr2, err := readRequired(resp2); err == nil {
			out.Refusal = pr2.Error
		}
	}
	return resp2, nil
}

// choose picks the first payable offer, preferring cfg.Chains' order.
func (t *Transport) choose(pr PaymentRequired) (Offer, error) {
	var offers []Offer
	var whyNot []error
	for i, r := range pr.Accepts {
		o, err := ParseOffer(pr.X402Version, r)
		if err != nil {
			whyNot = append(whyNot, fmt.Errorf("accepts[%d]: %w", i, err))
			continue
		}
		if len(t.cfg.Chains) > 0 && !slices.Contains(t.cfg.Chains, o.ChainID) {
			whyNot = append(whyNot, fmt.Errorf("accepts[%d]: %w: chain %d is not one this agent pays on %v", i, ErrUnsupported, o.ChainID, t.cfg.Chains))
			continue
		}
		offers = append(offers, o)
	}
	if len(offers) == 0 {
		if len(whyNot) == 0 {
			return Offer{}, fmt.Errorf("%w: the 402 lists no way to pay", ErrUnsupported)
		}
		return Offer{}, errors.Join(whyNot...)
	}
	rank := func(o Offer) int {
		if i := slices.Index(t.cfg.Chains, o.ChainID); i >= 0 {
			return i
		}
		return len(t.cfg.Chains)
	}
	slices.SortStableFunc(offers, func(a, b Offer) int { return rank(a) - rank(b) })
	return offers[0], nil
}

// readRequired reads the requirements of a 402: the PAYMENT-REQUIRED header
// (v2) or the JSON body (v1). It consumes and closes the body.
func readRequired(resp *http.Response) (PaymentRequired, error) {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHeader))
	var pr PaymentRequired
	if h := resp.Header.Get(HeaderRequired); h != "" {
		if err := decodeHeader(HeaderRequired, h, &pr); err != nil {
			return pr, err
		}
		if pr.X402Version != 2 {
			return pr, fmt.Errorf("%w: %s says x402Version %d, want 2", ErrUnsupported, HeaderRequired, pr.X402Version)
		}
		return pr, nil
	}
	if err := json.Unmarshal(bytes.TrimSpace(body), &pr); err != nil {
		return pr, fmt.Errorf("x402: a 402 with neither a %s header nor a JSON body of requirements: %w", HeaderRequired, err)
	}
	if pr.X402Version != 1 {
		return pr, fmt.Errorf("%w: 402 body says x402Version %d (v2 requirements come in the %s header)", ErrUnsupported, pr.X402Version, HeaderRequired)
	}
	return pr, nil
}

// readSettle reads PAYMENT-RESPONSE (or the v1 header) if present.
func readSettle(resp *http.Response, version int) (SettleResponse, bool, error) {
	name := HeaderResponse
	if version == 1 {
		name = HeaderRespV1
	}
	h := resp.Header.Get(name)
	if h == "" {
		return SettleResponse{}, false, nil
	}
	var sr SettleResponse
	if err := decodeHeader(name, h, &sr); err != nil {
		return sr, false, err
	}
	return sr, true, nil
}

// AuthorizationUsed asks the token whether (from, nonce) was used: after
// ValidBefore has passed, false means the seller can no longer take the
// money and a spend reservation may be released.
func AuthorizationUsed(ctx context.Context, c *wallet.Client, asset common.Address, a Auth) (bool, error) {
	data, err := tokenABI().Pack("authorizationState", a.From, a.Nonce)
	if err != nil {
		return false, err
	}
	out, err := c.Read(ctx, asset, data)
	if err != nil {
		return false, fmt.Errorf("x402: authorizationState on %s: %w", asset, err)
	}
	if len(out) != 32 {
		return false, fmt.Errorf("x402: authorizationState on %s returned %d bytes; is it an EIP-3009 token?", asset, len(out))
	}
	return new(big.Int).SetBytes(out).Sign() != 0, nil
}
