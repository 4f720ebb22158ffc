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
type payments struct {
	agent    string
	ledger   *spend.Ledger
	key      *wallet.Key
	wallet   *wallet.Client
	earnings *earnings.Splitter
	asset    string            // the earnings asset as configured ("native" or 0x…)
	replay   *x402.ReplayGuard // wallet.sell's, opened by SellHandler
	err      error             // why the wallet is not available; payments then fail closed
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
		if p.err = p.open(ctx, f, a, dir); p.err != nil {
			f.log.Error("wallet not available: payments are refused", "agent", a.Name, "err", p.err)
		}
	}
	return nil
}

func (p *payments) open(ctx context.Context, f *Fleet, a config.Agent, dir string) error {
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
	cfg := wallet.Config{ChainID: uint64(w.ChainID), RPC: w.RPC, Signer: key, Journal: filepath.Join(dir, "payments.journal"), Confirmations: uint64(w.Confirmations)}
	open := f.opts.Wallets
	if open == nil {
		open = func(ctx context.Context, _ string, cfg wallet.Config) (*wallet.Client, error) {
			return wallet.Open(ctx, cfg)
		}
	}
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := open(octx, a.Name, cfg)
	if err != nil {
		return err
	}
	if c.ChainID() != uint64(w.ChainID) || c.Address() != key.Address() {
		c.Close()
		return fmt.Errorf("the wallet factory returned a client for chain %d and %s; the config says chain %d and the key is %s", c.ChainID(), c.Address(), w.ChainID, key.Address())
	}
	p.wallet = c
	if e := w.Earnings; e != nil {
		ec := earnings.Config{Path: filepath.Join(dir, "earnings.journal"), Threshold: e.Threshold.Int(), Treasury: share(e.Treasury)}
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

func share(o config.Owner) earnings.Share {
	return earnings.Share{Name: o.Name, Payee: common.HexToAddress(o.Payee), Weight: uint64(o.Weight)}
}

// hostPayments is what the agent's plugin host is given: nil without a
// working wallet, so pay.* answer unavailable.
func (f *Fleet) hostPayments(agent string) *host.Payments {
	p := f.payments[agent]
	if p == nil || p.wallet == nil {
		return nil
	}
	return &host.Payments{Wallet: p.wallet, Signer: p.key}
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
		if p.wallet != nil {
			errs = append(errs, p.wallet.Close())
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
	args, _ := json.Marshal(policy.Payment{Key: t.Key, Chain: pp.p.wallet.ChainID(), Asset: asset, Payee: t.To.Hex(), Amount: t.Amount.String(), Purpose: "earnings payout"})
	done, err := pp.f.policy.Authorize(ctx, policy.Action{Agent: pp.p.agent, Principal: policy.Principal{Kind: policy.PrincipalSystem, ID: "earnings"},
		Kind: policy.ActionHost, Name: "earnings.payout", Effect: wire.EffectPayment, Target: t.To.Hex(), Args: args})
	if err != nil {
		return nil, err
	}
	r, err := pp.p.wallet.Pay(ctx, t)
	if err != nil {
		if errors.Is(err, wallet.ErrReverted) || errors.Is(err, wallet.ErrAbandoned) || errors.Is(err, wallet.ErrNotSent) || errors.Is(err, wallet.ErrFeeCap) {
			done(nil, policy.NotPaid(err))
		} else {
			done(nil, err)
		}
		return r, err
	}
	res, _ := json.Marshal(policy.PaymentResult{Tx: r.TxHash.Hex()})
	done(res, nil)
	return r, nil
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
// paid out, and what is held for the next round.
type earningsView struct {
	Earnings  []ownerEarnings `json:"earnings"`
	Total     string          `json:"total"` // everything earned
	Asset     string          `json:"asset"`
	PaidOut   string          `json:"paid_out"`
	Held      string          `json:"held"`
	Threshold string          `json:"threshold"`
	Rounds    int             `json:"rounds"`
	Pending   bool            `json:"pending,omitempty"` // a round is not fully paid yet
}

type ownerEarnings struct {
	Owner  string `json:"owner"`
	Payee  string `json:"payee"`
	Share  string `json:"share"` // weight / total weight, e.g. "3/4"
	Amount string `json:"amount"`
	Asset  string `json:"asset"`
}

func earningsCommand(_ context.Context, a *Agent, _ call) (any, string, error) {
	p := a.fleet.payments[a.cfg.Name]
	switch {
	case p == nil || a.cfg.Wallet == nil:
		return nil, "", &commandError{code: CodeUnavailable, msg: fmt.Sprintf("agent %s has no wallet: configure wallet: {chain_id, rpc} with wallet.earnings: {asset, threshold, owners, treasury} to share what it earns", a.cfg.Name)}
	case p.earnings == nil && p.err != nil:
		return nil, "", &commandError{code: CodeUnavailable, msg: fmt.Sprintf("agent %s's wallet is not available: %v", a.cfg.Name, p.err)}
	case p.earnings == nil:
		return nil, "", &commandError{code: CodeUnavailable, msg: fmt.Sprintf("agent %s does not split its earnings: configure wallet.earnings: {asset, threshold, owners, treasury}", a.cfg.Name)}
	}
	st := p.earnings.Status()
	var total uint64
	for _, ps := range st.PerPayee {
		total += ps.Share.Weight
	}
	v := earningsView{Total: st.Earned.String(), Asset: p.asset, PaidOut: st.PaidOut.String(), Held: st.Held.String(), Threshold: st.Threshold.String(), Rounds: st.Rounds, Pending: st.Pending, Earnings: []ownerEarnings{}}
	var b strings.Builder
	fmt.Fprintf(&b, "earned %s %s; paid out %s in %d rounds; held %s (pays out at %s)\n", v.Total, v.Asset, v.PaidOut, v.Rounds, v.Held, v.Threshold)
	for _, ps := range st.PerPayee {
		oe := ownerEarnings{Owner: ps.Share.Name, Payee: ps.Share.Payee.Hex(), Share: fmt.Sprintf("%d/%d", ps.Share.Weight, total), Amount: ps.Paid.String(), Asset: p.asset}
		v.Earnings = append(v.Earnings, oe)
		fmt.Fprintf(&b, "  %-12s %-6s %s %s\n", oe.Owner, oe.Share, oe.Amount, oe.Asset)
	}
	return v, strings.TrimRight(b.String(), "\n"), nil
}

// WalletAddress is the EVM address of an agent's wallet key, once its
// wallet opened; ok is false otherwise, with the reason in err.
func (f *Fleet) WalletAddress(agent string) (addr common.Address, ok bool, err error) {
	p := f.payments[agent]
	switch {
	case p == nil:
		return common.Address{}, false, fmt.Errorf("agent %s has no wallet configured", agent)
	case p.wallet == nil:
		return common.Address{}, false, p.err
	}
	return p.wallet.Address(), true, nil
}
