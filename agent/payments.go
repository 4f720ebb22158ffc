package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/earnings"
	"github.com/depai/depai/agent/wallet/spend"
	"github.com/depai/depai/agent/wallet/x402"
	"github.com/depai/depai/sdk/wire"
)

// WalletFactory opens an agent's wallet client (Options.Wallets). cfg has
// the chain, RPC, signer and journal already filled in from the agent's
// config; a factory may change the rest (a simulated backend, a faster
// poll) and must keep the chain id honest.
type WalletFactory func(ctx context.Context, agent string, cfg wallet.Config) (*wallet.Client, error)

// payments is one agent's money: the spend ledger the policy counts on,
// and — when the wallet opened — the wallet, its key and the earnings.
// Lifecycle: opened in provision before the policy engine, closed after
// the plugins in Close.
//
// A wallet whose node cannot be reached at start (down, or reporting
// another chain id) is dialled again in the background with backoff until
// it opens; meanwhile payments fail closed with the reason, and once it
// opens the unfinished payouts resume and the identities are registered.
type payments struct {
	agent    string
	cfg      config.Agent
	ledger   *spend.Ledger
	key      *wallet.Key
	earnings *earnings.Splitter
	asset    string            // the earnings asset as configured ("native" or 0x…)
	replay   *x402.ReplayGuard // wallet.sell's, opened by SellHandler
	wcfg     wallet.Config     // what the wallet is opened with

	mu     sync.Mutex
	wallet *wallet.Client // nil until the node answered with the right chain id
	err    error          // why the wallet is not available; payments then fail closed
	nextAt time.Time      // the next scheduled payout
}

// client is the open wallet, or why there is none.
func (p *payments) client() (*wallet.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wallet == nil {
		return nil, p.err
	}
	return p.wallet, nil
}

func (p *payments) fail(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// WalletKeyPath is where an agent's EVM key lives by default: beside its
// identity key, DATA/identity/NAME.evm.json.
func WalletKeyPath(dataDir, agent string) string {
	return filepath.Join(dataDir, identity.KeyDir, agent+".evm.json")
}

func walletDir(dataDir, agent string) string { return filepath.Join(dataDir, "wallet", agent) }

// openPayments opens the spend ledger of every agent with a spend policy
// (the engine refuses to start without it) and the wallet of every agent
// with wallet:. A wallet that cannot open — no key passphrase, an RPC that
// is down or reports another chain id — does not stop the agent: its
// payments are refused with the reason, on record.
func (f *Fleet) openPayments(ctx context.Context, rules map[string]policy.Rules) error {
	f.payments = map[string]*payments{}
	for _, a := range f.file.Agents {
		if a.Wallet == nil && len(a.Safety.Spend.Limits) == 0 {
			continue
		}
		p := &payments{agent: a.Name}
		f.payments[a.Name] = p
		dir := walletDir(f.opts.DataDir, a.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("wallet of %s: %w", a.Name, err)
		}
		if len(a.Safety.Spend.Limits) > 0 {
			l, err := spend.Open(spend.Config{Path: filepath.Join(dir, "spend.ledger")})
			if err != nil {
				return fmt.Errorf("agent %s: %w", a.Name, err)
			}
			p.ledger = l
			r := rules[a.Name]
			r.Ledger = l
			rules[a.Name] = r
		}
		if a.Wallet == nil {
			p.err = errors.New("no wallet is configured (wallet: {chain_id, rpc})")
			continue
		}
		if err := p.open(f, a, dir); err != nil {
			p.err = err
			f.log.Error("wallet not available: payments are refused", "agent", a.Name, "err", err)
			continue
		}
		if err := p.dial(ctx, f); err != nil {
			p.fail(err)
			f.log.Error("wallet not available yet: payments are refused until its node answers; retrying", "agent", a.Name, "rpc", a.Wallet.RPC, "err", err)
		}
	}
	return nil
}

// startPayments starts, once the fleet is up, what runs in the background:
// dialling wallets that did not open, the work of a wallet that did
// (resumed payouts, identity registration) and the payout schedules.
func (f *Fleet) startPayments() {
	for _, p := range f.payments {
		if p.key == nil {
			continue
		}
		if _, err := p.client(); err != nil {
			f.goBG(func() { f.redial(p) })
		} else {
			f.goBG(func() { f.walletReady(p) })
		}
		if e := p.cfg.Wallet.Earnings; e != nil && e.Every > 0 && p.earnings != nil {
			f.goBG(func() { f.payoutSchedule(p, e.Every.Std()) })
		}
	}
}

// Backoff between dials of a wallet's node that is not reachable.
const (
	redialMin = 500 * time.Millisecond
	redialMax = 30 * time.Second
)

// redial dials p's node with backoff until it opens or the fleet closes.
func (f *Fleet) redial(p *payments) {
	delay := redialMin
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-f.bgCtx.Done():
			return
		case <-t.C:
		}
		err := p.dial(f.bgCtx, f)
		if err == nil {
			f.log.Info("wallet available: its node answered", "agent", p.agent, "rpc", p.wcfg.RPC)
			f.walletReady(p)
			return
		}
		p.fail(err)
		f.log.Debug("wallet still not available", "agent", p.agent, "err", err, "retry_in", delay)
		delay = min(2*delay, redialMax)
		t.Reset(delay)
	}
}

// walletReady is what a wallet does once it is open: finish the payout
// round a stop or a crash cut short (the same idempotency keys, so nobody
// is paid twice), pay out what reached the threshold, and register the
// identities.
func (f *Fleet) walletReady(p *payments) {
	if p.earnings != nil {
		if _, err := p.earnings.Payout(f.bgCtx, policyPayer{f: f, p: p}); err != nil {
			f.log.Error("earnings payout not finished", "agent", p.agent, "err", err)
		}
	}
	if ids := p.cfg.Wallet.Identities; ids != nil && ids.Register {
		if _, err := f.RegisterIdentities(f.bgCtx, p.agent); err != nil {
			f.log.Error("identities not registered on chain", "agent", p.agent, "err", err)
		}
	}
}

// payoutSchedule pays out what is held every interval.
func (f *Fleet) payoutSchedule(p *payments, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	p.mu.Lock()
	p.nextAt = time.Now().Add(every)
	p.mu.Unlock()
	for {
		select {
		case <-f.bgCtx.Done():
			return
		case now := <-t.C:
			p.mu.Lock()
			p.nextAt = now.Add(every)
			p.mu.Unlock()
		}
		if _, err := f.PayoutNow(f.bgCtx, p.agent); err != nil {
			f.log.Error("scheduled earnings payout not made", "agent", p.agent, "err", err)
		}
	}
}

// PayoutNow pays out what an agent holds of its earnings (after finishing
// an unfinished round), whatever the threshold: what the payout schedule
// runs. Every transfer passes the spend policy; with the wallet down each
// is refused on record.
func (f *Fleet) PayoutNow(ctx context.Context, agent string) ([]*wallet.Receipt, error) {
	p := f.payments[agent]
	if p == nil || p.earnings == nil {
		return nil, fmt.Errorf("agent %s does not split its earnings (wallet.earnings)", agent)
	}
	return p.earnings.PayoutHeld(ctx, policyPayer{f: f, p: p})
}

// open opens what needs no node: the key and the earnings journal.
func (p *payments) open(f *Fleet, a config.Agent, dir string) error {
	p.cfg = a
	w := a.Wallet
	kc := wallet.KeyConfig{Path: cmp.Or(w.KeyFile, WalletKeyPath(f.opts.DataDir, a.Name))}
	if w.PassphraseEnv != "" {
		pass, ok := f.opts.Secrets(w.PassphraseEnv)
		if !ok {
			return fmt.Errorf("wallet.passphrase_env: $%s is not set, so the key %s cannot be opened", w.PassphraseEnv, kc.Path)
		}
		kc.Passphrase = pass
	}
	if err := os.MkdirAll(filepath.Dir(kc.Path), 0o700); err != nil {
		return err
	}
	key, err := wallet.OpenKey(kc)
	if err != nil {
		return err
	}
	p.key = key
	p.wcfg = wallet.Config{ChainID: uint64(w.ChainID), RPC: w.RPC, Signer: key, Journal: filepath.Join(dir, "payments.journal"), Confirmations: uint64(w.Confirmations)}
	if e := w.Earnings; e != nil {
		ec := earnings.Config{Path: filepath.Join(dir, "earnings.journal"), Treasury: share(e.Treasury)}
		if e.Threshold.IsSet() {
			ec.Threshold = e.Threshold.Int()
		}
		if e.Asset != config.NativeAsset {
			ec.Asset = common.HexToAddress(e.Asset)
		}
		for _, o := range e.Owners {
			ec.Owners = append(ec.Owners, share(o))
		}
		s, err := earnings.Open(ec)
		if err != nil {
			return err
		}
		p.earnings, p.asset = s, e.Asset
	}
	return nil
}

// dial opens the wallet on its node (refusing one that reports another
// chain id).
func (p *payments) dial(ctx context.Context, f *Fleet) error {
	open := f.opts.Wallets
	if open == nil {
		open = func(ctx context.Context, _ string, cfg wallet.Config) (*wallet.Client, error) {
			return wallet.Open(ctx, cfg)
		}
	}
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := open(octx, p.agent, p.wcfg)
	if err != nil {
		return err
	}
	if c.ChainID() != p.wcfg.ChainID || c.Address() != p.key.Address() {
		c.Close()
		return fmt.Errorf("the wallet factory returned a client for chain %d and %s; the config says chain %d and the key is %s", c.ChainID(), c.Address(), p.wcfg.ChainID, p.key.Address())
	}
	p.mu.Lock()
	p.wallet, p.err = c, nil
	p.mu.Unlock()
	return nil
}

func share(o config.Owner) earnings.Share {
	return earnings.Share{Name: o.Name, Payee: common.HexToAddress(o.Payee), Weight: uint64(o.Weight)}
}

// hostPayments is what the agent's plugin host is given: nil without a
// working wallet, so pay.* answer unavailable.
func (f *Fleet) hostPayments(agent string) *host.Payments {
	p := f.payments[agent]
	if p == nil || p.key == nil {
		return nil
	}
	return &host.Payments{Connect: p.client, ChainID: p.wcfg.ChainID, Signer: p.key}
}

// closePayments closes what openPayments opened.
func (f *Fleet) closePayments() error {
	var errs []error
	for _, p := range f.payments {
		if p.earnings != nil {
			errs = append(errs, p.earnings.Close())
		}
		if p.replay != nil {
			errs = append(errs, p.replay.Close())
		}
		// No wallet and no error: Open failed before this agent's wallet
		// was tried (TestOpenFailureReleasesStore).
		if w, err := p.client(); err == nil && w != nil {
			errs = append(errs, w.Close())
		}
		if p.ledger != nil {
			errs = append(errs, p.ledger.Close())
		}
	}
	return errors.Join(errs...)
}

// policyPayer pays an earnings round through the policy engine: the split
// is decided by the splitter, every transfer by the spend policy.
type policyPayer struct {
	f *Fleet
	p *payments
}

// Pay implements earnings.Payer.
func (pp policyPayer) Pay(ctx context.Context, t wallet.Transfer) (*wallet.Receipt, error) {
	asset := "native"
	if t.Asset != wallet.Native {
		asset = t.Asset.Hex()
	}
	args, _ := json.Marshal(policy.Payment{Key: t.Key, Chain: pp.p.wcfg.ChainID, Asset: asset, Payee: t.To.Hex(), Amount: t.Amount.String(), Purpose: "earnings payout"})
	action := policy.Action{Agent: pp.p.agent, Principal: policy.Principal{Kind: policy.PrincipalSystem, ID: "earnings"},
		Kind: policy.ActionHost, Name: "earnings.payout", Effect: wire.EffectPayment, Target: t.To.Hex(), Args: args}
	w, err := pp.p.client()
	if err != nil {
		err = fmt.Errorf("the wallet is not available: %w", err)
		pp.f.policy.Refused(ctx, action, "wallet", err.Error())
		return nil, err
	}
	done, err := pp.f.policy.Authorize(ctx, action)
	if err != nil {
		return nil, err
	}
	r, err := w.Pay(ctx, t)
	settle(done, r, err)
	return r, err
}

// settle tells the policy how a payment it allowed ended: a failure that
// certainly moved no money releases its reservation, any other keeps it
// counted.
func settle(done func(json.RawMessage, error), r *wallet.Receipt, err error) {
	switch {
	case err == nil:
		res, _ := json.Marshal(policy.PaymentResult{Tx: r.TxHash.Hex()})
		done(res, nil)
	case errors.Is(err, wallet.ErrReverted) || errors.Is(err, wallet.ErrAbandoned) || errors.Is(err, wallet.ErrNotSent) || errors.Is(err, wallet.ErrFeeCap):
		done(nil, policy.NotPaid(err))
	default:
		done(nil, err)
	}
}

// Earn records income of the agent (an x402 sale, a task payment) and pays
// out its owners' shares once the threshold is held. Without an earnings
// split the income is only kept in the wallet.
func (f *Fleet) Earn(ctx context.Context, agent, key string, amount *big.Int, source string) error {
	p := f.payments[agent]
	if p == nil || p.earnings == nil {
		return nil
	}
	if err := p.earnings.Earn(ctx, key, amount, source); err != nil {
		return err
	}
	_, err := p.earnings.Payout(ctx, policyPayer{f: f, p: p})
	return err
}

// earningsView is /earnings' structured result: what each owner has been
// paid out, what is being paid, and what is held for the next round.
type earningsView struct {
	Earnings   []ownerEarnings `json:"earnings"`
	Total      string          `json:"total"` // everything earned
	Asset      string          `json:"asset"`
	PaidOut    string          `json:"paid_out"`
	Paying     string          `json:"paying"` // in a round not yet fully paid
	Held       string          `json:"held"`
	Threshold  string          `json:"threshold,omitempty"` // pays out when this much is held
	Every      string          `json:"every,omitempty"`     // pays out what is held this often
	NextPayout string          `json:"next_payout,omitempty"`
	Rounds     int             `json:"rounds"`
	Pending    bool            `json:"pending,omitempty"` // a round is not fully paid yet
	Wallet     string          `json:"wallet,omitempty"`  // why the wallet is not available, if it is not
}

type ownerEarnings struct {
	Owner  string `json:"owner"`
	Payee  string `json:"payee"`
	Share  string `json:"share"`  // weight / total weight, e.g. "3/4"
	Amount string `json:"amount"` // paid out
	Paying string `json:"paying"` // in an unfinished round
	Asset  string `json:"asset"`
}

func earningsCommand(_ context.Context, a *Agent, _ call) (any, string, error) {
	p := a.fleet.payments[a.cfg.Name]
	switch {
	case p == nil || a.cfg.Wallet == nil:
		return nil, "", &commandError{code: CodeUnavailable, msg: fmt.Sprintf("agent %s has no wallet: configure wallet: {chain_id, rpc} with wallet.earnings: {asset, threshold, owners, treasury} to share what it earns", a.cfg.Name)}
	case p.earnings == nil:
		if _, err := p.client(); err != nil {
			return nil, "", &commandError{code: CodeUnavailable, msg: fmt.Sprintf("agent %s's wallet is not available: %v", a.cfg.Name, err)}
		}
		return nil, "", &commandError{code: CodeUnavailable, msg: fmt.Sprintf("agent %s does not split its earnings: configure wallet.earnings: {asset, threshold, owners, treasury}", a.cfg.Name)}
	}
	st := p.earnings.Status()
	var total uint64
	for _, ps := range st.PerPayee {
		total += ps.Share.Weight
	}
	v := earningsView{Total: st.Earned.String(), Asset: p.asset, PaidOut: st.PaidOut.String(), Paying: st.Paying.String(), Held: st.Held.String(),
		Rounds: st.Rounds, Pending: st.Pending, Earnings: []ownerEarnings{}}
	var when []string
	if st.Threshold != nil {
		v.Threshold = st.Threshold.String()
		when = append(when, "at "+v.Threshold)
	}
	if e := a.cfg.Wallet.Earnings; e.Every > 0 {
		v.Every = e.Every.String()
		p.mu.Lock()
		if !p.nextAt.IsZero() {
			v.NextPayout = p.nextAt.UTC().Format(time.RFC3339)
		}
		p.mu.Unlock()
		when = append(when, "every "+v.Every)
	}
	if _, err := p.client(); err != nil {
		v.Wallet = err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "earned %s %s; paid out %s in %d rounds; paying %s; held %s (pays out %s)\n", v.Total, v.Asset, v.PaidOut, v.Rounds, v.Paying, v.Held, strings.Join(when, " and "))
	if v.Wallet != "" {
		fmt.Fprintf(&b, "the wallet is not available, payouts wait: %s\n", v.Wallet)
	}
	for _, ps := range st.PerPayee {
		oe := ownerEarnings{Owner: ps.Share.Name, Payee: ps.Share.Payee.Hex(), Share: fmt.Sprintf("%d/%d", ps.Share.Weight, total), Amount: ps.Paid.String(), Paying: ps.Paying.String(), Asset: p.asset}
		v.Earnings = append(v.Earnings, oe)
		fmt.Fprintf(&b, "  %-12s %-6s %s %s\n", oe.Owner, oe.Share, oe.Amount, oe.Asset)
	}
	return v, strings.TrimRight(b.String(), "\n"), nil
}

// WalletAddress is the EVM address of an agent's wallet key, once its
// wallet opened; ok is false otherwise, with the reason in err.
func (f *Fleet) WalletAddress(agent string) (addr common.Address, ok bool, err error) {
	p := f.payments[agent]
	if p == nil {
		return common.Address{}, false, fmt.Errorf("agent %s has no wallet configured", agent)
	}
	w, err := p.client()
	if err != nil {
		return common.Address{}, false, err
	}
	return w.Address(), true, nil
}
