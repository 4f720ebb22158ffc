package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/wallet/x402"
	"github.com/depai/depai/memory"
)

// SellPath is where an agent that sells its readings (wallet.sell) serves
// them: GET SellPath + NAME + "/readings" [?sensor=S&limit=N].
const SellPath = "/x402/agents/"

// maxSoldReadings bounds one sale's answer.
const maxSoldReadings = 100

// SellHandler serves the readings of every agent with wallet.sell for x402
// payments — no operator token: the buyer pays instead. Each payment is
// verified and settled through the configured facilitator (or the agent's
// own wallet), claimed first in a durable replay guard, audited, and
// counted as the agent's earnings. Nil when no agent sells (off by
// default).
func (f *Fleet) SellHandler() (http.Handler, error) {
	mux := http.NewServeMux()
	selling := false
	for _, a := range f.file.Agents {
		p := f.payments[a.Name]
		if a.Wallet == nil || a.Wallet.Sell == nil || p == nil {
			continue
		}
		if p.key == nil {
			f.log.Error("readings not for sale: the wallet key is not available", "agent", a.Name, "err", p.err)
			continue
		}
		sl := a.Wallet.Sell
		var fac x402.Facilitator = walletFacilitator{p}
		if sl.Facilitator != "" {
			fac = &x402.HTTPFacilitator{URL: sl.Facilitator}
		}
		if p.replay == nil {
			g, err := x402.OpenReplayGuard(filepath.Join(walletDir(f.opts.DataDir, a.Name), "x402.replay"), nil)
			if err != nil {
				return nil, fmt.Errorf("agent %s: %w", a.Name, err)
			}
			p.replay = g
		}
		price := sl.Price.Int()
		name, sensors := a.Name, sl.Sensors
		earnsIt := p.earnings != nil && strings.EqualFold(p.asset, sl.Asset)
		pw, err := x402.Paywall(x402.PaywallConfig{
			Accepts:     []x402.Price{{ChainID: uint64(a.Wallet.ChainID), Asset: common.HexToAddress(sl.Asset), Amount: price, PayTo: p.key.Address(), TokenName: sl.TokenName, TokenVersion: sl.TokenVersion}},
			Description: "sensor readings of " + name, MimeType: "application/json",
			Facilitator: fac, Replay: p.replay,
			OnSale: func(ctx context.Context, s x402.Sale) {
				f.recordSale(ctx, name, s)
				if s.Err == nil && earnsIt {
					f.goBG(func() {
						if err := f.Earn(f.bgCtx, name, "x402:"+s.Tx, price, "x402 sale of "+s.Resource); err != nil {
							f.log.Error("earnings of a sale not paid out", "agent", name, "tx", s.Tx, "err", err)
						}
					})
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("agent %s: wallet.sell: %w", a.Name, err)
		}
		mux.Handle("GET "+SellPath+name+"/readings", pw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.serveReadings(w, r, name, sensors)
		})))
		selling = true
	}
	if !selling {
		return nil, nil
	}
	return mux, nil
}

// walletFacilitator settles with the agent's own wallet once it is open: a
// node that was down at start refuses payments (a 502, nothing settled)
// until the wallet opens, and sells from then on.
type walletFacilitator struct{ p *payments }

var _ x402.Facilitator = walletFacilitator{}

func (w walletFacilitator) local() (*x402.Local, error) {
	c, err := w.p.client()
	if err != nil {
		return nil, fmt.Errorf("%w: the wallet is not available: %v", x402.ErrFacilitator, err)
	}
	return x402.NewLocal(c, nil), nil
}

func (w walletFacilitator) Verify(ctx context.Context, req x402.VerifyRequest) (x402.VerifyResponse, error) {
	l, err := w.local()
	if err != nil {
		return x402.VerifyResponse{}, err
	}
	return l.Verify(ctx, req)
}

func (w walletFacilitator) Settle(ctx context.Context, req x402.VerifyRequest) (x402.SettleResponse, error) {
	l, err := w.local()
	if err != nil {
		return x402.SettleResponse{}, err
	}
	return l.Settle(ctx, req)
}

func (w walletFacilitator) Supported(ctx context.Context) (x402.SupportedResponse, error) {
	l, err := w.local()
	if err != nil {
		return x402.SupportedResponse{}, err
	}
	return l.Supported(ctx)
}

// recordSale puts a sale (or a refused payment) on the audit record.
func (f *Fleet) recordSale(ctx context.Context, agent string, s x402.Sale) {
	e := policy.Entry{Agent: agent, Principal: policy.Principal{Kind: policy.PrincipalAgent, ID: s.Payer}, Kind: policy.ActionHost,
		Action: "x402.sale", Target: s.Resource, Phase: policy.PhaseEvent, Decision: policy.Allow,
		Reason: fmt.Sprintf("sold for %s of %s on chain %d, transaction %s", s.Offer.Amount, s.Offer.Asset.Hex(), s.Offer.ChainID, s.Tx)}
	if s.Err != nil {
		e.Decision, e.Reason = policy.Deny, fmt.Sprintf("%s: %v", s.Stage, s.Err)
	}
	if _, err := f.audit.Write(context.WithoutCancel(ctx), e); err != nil {
		f.log.Error("audit: sale not recorded", "agent", agent, "err", err)
	}
}

// soldReading is one reading in a sale's answer.
type soldReading struct {
	Sensor string          `json:"sensor"`
	Time   string          `json:"time"`
	Data   json.RawMessage `json:"data"`
}

// serveReadings answers a paid request with the agent's newest readings.
func (f *Fleet) serveReadings(w http.ResponseWriter, r *http.Request, agent string, sensors []string) {
	limit := 10
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			http.Error(w, fmt.Sprintf("limit %q is not a positive integer", s), http.StatusBadRequest)
			return
		}
		limit = min(n, maxSoldReadings)
	}
	q := memory.Query{Namespace: "agent/" + agent, Kinds: []memory.Kind{memory.KindReading}, Limit: limit}
	if s := r.URL.Query().Get("sensor"); s != "" {
		if len(sensors) > 0 && !slices.Contains(sensors, s) {
			http.Error(w, fmt.Sprintf("sensor %q is not for sale (for sale: %s)", s, strings.Join(sensors, ", ")), http.StatusNotFound)
			return
		}
		q.Tags = []string{"sensor:" + s}
	}
	out := []soldReading{}
	for rec, err := range f.store.Query(r.Context(), q) {
		if err != nil {
			http.Error(w, "readings unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		sensor := ""
		for _, t := range rec.Tags {
			if s, ok := strings.CutPrefix(t, "sensor:"); ok {
				sensor = s
			}
		}
		if len(sensors) > 0 && !slices.Contains(sensors, sensor) {
			continue
		}
		out = append(out, soldReading{Sensor: sensor, Time: rec.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Data: rec.Data})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"agent": agent, "readings": out})
}
