package x402

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// Price is one way a buyer may pay for a resource.
type Price struct {
	ChainID uint64
	Asset   common.Address // an EIP-3009 token
	Amount  *big.Int       // in the token's smallest unit
	PayTo   common.Address
	// TokenName and TokenVersion are the token's EIP-712 domain.
	TokenName, TokenVersion string
	// MaxTimeoutSeconds is how long the buyer's authorization must be
	// valid for; 0 means 60.
	MaxTimeoutSeconds int
}

func (p Price) requirements() Requirements {
	t := p.MaxTimeoutSeconds
	if t <= 0 {
		t = 60
	}
	return Requirements{Scheme: SchemeExact, Network: Network(p.ChainID), Asset: p.Asset.Hex(), Amount: p.Amount.String(),
		PayTo: p.PayTo.Hex(), MaxTimeoutSeconds: t, Extra: map[string]any{"name": p.TokenName, "version": p.TokenVersion}}
}

// Sale is one paid (or refused) request, for the seller's audit and
// earnings.
type Sale struct {
	Resource string
	Offer    Offer
	Payer    string
	Tx       string // set when settled
	Err      error  // why it was refused or failed; nil when sold
	// Stage says where it stopped: "payload", "replay", "verify", "handler",
	// "settle" or "sold".
	Stage string
}

// PaywallConfig configures a Paywall.
type PaywallConfig struct {
	Accepts     []Price
	Description string
	MimeType    string
	Facilitator Facilitator
	Replay      *ReplayGuard
	// OnSale is told about every payment attempt; may be nil.
	OnSale func(ctx context.Context, s Sale)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Paywall returns middleware that sells next: a request without a payment
// gets 402 with the requirements (PAYMENT-REQUIRED, and the same JSON in the
// body); a request with one (PAYMENT-SIGNATURE, or X-PAYMENT for v1) is
// checked, claimed in the replay guard, verified, served into a buffer, and
// settled only if next answered below 400 — so a failing handler costs the
// buyer nothing. The answer carries PAYMENT-RESPONSE.
func Paywall(cfg PaywallConfig) (func(http.Handler) http.Handler, error) {
	if len(cfg.Accepts) == 0 || cfg.Facilitator == nil || cfg.Replay == nil {
		return nil, errors.New("x402: PaywallConfig needs Accepts, a Facilitator and a Replay guard")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var reqs []Requirements
	for i, p := range cfg.Accepts {
		if p.Amount == nil || p.Amount.Sign() <= 0 || p.ChainID == 0 || p.TokenName == "" || p.TokenVersion == "" {
			return nil, fmt.Errorf("x402: PaywallConfig.Accepts[%d]: needs a positive Amount, a ChainID and the token's EIP-712 name and version", i)
		}
		reqs = append(reqs, p.requirements())
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(&sale{cfg: cfg, reqs: reqs, next: next}).serve(w, r)
		})
	}, nil
}

type sale struct {
	cfg  PaywallConfig
	reqs []Requirements
	next http.Handler
}

func (s *sale) resource(r *http.Request) *ResourceInfo {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &ResourceInfo{URL: scheme + "://" + r.Host + r.URL.RequestURI(), Description: s.cfg.Description, MimeType: s.cfg.MimeType}
}

// require answers 402 with the requirements and an error message.
func (s *sale) require(w http.ResponseWriter, r *http.Request, msg string) {
	pr := PaymentRequired{X402Version: 2, Error: msg, Resource: s.resource(r), Accepts: s.reqs}
	h, _ := encodeHeader(pr)
	w.Header().Set(HeaderRequired, h)
	writeJSON(w, http.StatusPaymentRequired, pr)
}

func (s *sale) report(ctx context.Context, sl Sale) {
	if s.cfg.OnSale != nil {
		s.cfg.OnSale(ctx, sl)
	}
}

func (s *sale) serve(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v2, v1 := r.Header.Get(HeaderSignature), r.Header.Get(HeaderPaymentV1)
	if v2 == "" && v1 == "" {
		s.require(w, r, "payment required")
		return
	}
	res := s.resource(r).URL
	refuse := func(stage string, sl Sale, err error) {
		sl.Resource, sl.Stage, sl.Err = res, stage, err
		s.report(ctx, sl)
		s.require(w, r, err.Error())
	}
	var p PaymentPayload
	version := 2
	if v2 != "" {
		if err := decodeHeader(HeaderSignature, v2, &p); err != nil {
			refuse("payload", Sale{}, err)
			return
		}
	} else {
		version = 1
		if err := decodeHeader(HeaderPaymentV1, v1, &p); err != nil {
			refuse("payload", Sale{}, err)
			return
		}
	}
	if p.X402Version != version {
		refuse("payload", Sale{}, fmt.Errorf("x402: payload x402Version %d in a v%d header", p.X402Version, version))
		return
	}
	req, offer, err := s.match(version, p)
	if err != nil {
		refuse("payload", Sale{}, err)
		return
	}
	sl := Sale{Offer: offer}
	a, err := ParseAuth(p.Payload.Authorization)
	if err != nil {
		refuse("payload", sl, err)
		return
	}
	sl.Payer = a.From.Hex()
	if a.To != offer.PayTo || a.Value.Cmp(offer.Amount) != 0 {
		refuse("payload", sl, fmt.Errorf("x402: the authorization pays %s to %s; the price is %s to %s", a.Value, a.To, offer.Amount, offer.PayTo))
		return
	}
	if err := s.cfg.Replay.Claim(ReplayKey(offer.ChainID, offer.Asset, a), time.Unix(a.ValidBefore.Int64(), 0)); err != nil {
		refuse("replay", sl, err)
		return
	}
	vreq := VerifyRequest{X402Version: version, PaymentPayload: p, PaymentRequirements: req}
	vr, err := s.cfg.Facilitator.Verify(ctx, vreq)
	if err != nil {
		sl.Resource, sl.Stage, sl.Err = res, "verify", err
		s.report(ctx, sl)
		http.Error(w, "x402: the payment could not be verified: "+err.Error(), http.StatusBadGateway)
		return
	}
	if !vr.IsValid {
		refuse("verify", sl, fmt.Errorf("x402: payment invalid: %s %s", vr.InvalidReason, vr.InvalidMessage))
		return
	}
	buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
	s.next.ServeHTTP(buf, r)
	if buf.status >= 400 {
		sl.Resource, sl.Stage, sl.Err = res, "handler", fmt.Errorf("x402: the resource answered %d; not settled", buf.status)
		s.report(ctx, sl)
		buf.flush(w)
		return
	}
	sr, err := s.cfg.Facilitator.Settle(ctx, vreq)
	if err != nil {
		sl.Resource, sl.Stage, sl.Err = res, "settle", err
		s.report(ctx, sl)
		http.Error(w, "x402: settlement failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	if !sr.Success {
		refuse("settle", sl, fmt.Errorf("x402: settlement refused: %s %s", sr.ErrorReason, sr.ErrorMessage))
		return
	}
	sl.Resource, sl.Stage, sl.Tx = res, "sold", sr.Transaction
	h, _ := encodeHeader(sr)
	if version == 1 {
		buf.header.Set(HeaderRespV1, h)
	} else {
		buf.header.Set(HeaderResponse, h)
	}
	s.report(ctx, sl)
	buf.flush(w)
}

// match finds the requirement a payload pays.
func (s *sale) match(version int, p PaymentPayload) (Requirements, Offer, error) {
	for _, req := range s.reqs {
		if version == 2 {
			a := p.Accepted
			if a == nil {
				return Requirements{}, Offer{}, errors.New("x402: payload.accepted is missing")
			}
			if a.Scheme != req.Scheme || a.Network != req.Network || !strings.EqualFold(a.Asset, req.Asset) ||
				a.Amount != req.Amount || !strings.EqualFold(a.PayTo, req.PayTo) {
				continue
			}
		} else if p.Scheme != req.Scheme || !sameNetwork(p.Network, req.Network) {
			continue
		}
		rq := req
		if version == 1 {
			rq.Network, rq.MaxAmountRequired, rq.Amount = p.Network, req.Amount, ""
		}
		o, err := ParseOffer(version, rq)
		return rq, o, err
	}
	if version == 2 && p.Accepted != nil {
		return Requirements{}, Offer{}, fmt.Errorf("x402: payload.accepted (%s %s of %s to %s on %s) is not one of the prices offered",
			p.Accepted.Scheme, p.Accepted.Amount, p.Accepted.Asset, p.Accepted.PayTo, p.Accepted.Network)
	}
	return Requirements{}, Offer{}, fmt.Errorf("x402: no price for scheme %q on network %q", p.Scheme, p.Network)
}

func sameNetwork(a, b string) bool {
	x, err1 := ChainID(a)
	y, err2 := ChainID(b)
	return err1 == nil && err2 == nil && x == y
}

// bufferedWriter holds a handler's answer until the payment is settled.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}

func (b *bufferedWriter) flush(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}
