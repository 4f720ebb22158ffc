package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/wallet/spend"
	"github.com/depai/depai/sdk/wire"
)

// Payment is what an action with the payment effect carries in its Args:
// every payment — a plugin's pay.execute, an x402 payment inside
// http.fetch, an earnings payout — is decided on these fields. An action
// whose Args do not read as a Payment is denied (fail closed).
type Payment struct {
	// Key is the idempotency key: a retry with the same key is the same
	// payment, decided and counted once.
	Key     string `json:"key"`
	Chain   uint64 `json:"chain"`
	Asset   string `json:"asset"` // "native" or a token contract, 0x…
	Payee   string `json:"payee"`
	Amount  string `json:"amount"` // decimal integer, the asset's smallest unit
	Purpose string `json:"purpose,omitempty"`
}

// ErrNotPaid marks a payment's outcome error that certainly moved no money
// (never sent, refused by the node, reverted): its reservation is released.
// Any other error leaves the amount counted against the caps, since the
// money may have moved.
var ErrNotPaid = errors.New("the payment was not made")

// NotPaid wraps err as a payment outcome that moved no money.
func NotPaid(err error) error { return &notPaid{err} }

type notPaid struct{ err error }

func (e *notPaid) Error() string   { return e.err.Error() }
func (e *notPaid) Unwrap() []error { return []error{e.err, ErrNotPaid} }

// PaymentResult is what an allowed payment's outcome reports (the result
// passed to done): the transaction that paid it, which the ledger commits.
type PaymentResult struct {
	Tx string `json:"tx"`
	// Amount is what actually moved when it is less than the payment's
	// amount (an x402 "upto" payment authorizes a maximum and the seller
	// settles the cost); empty: the whole amount.
	Amount string `json:"amount,omitempty"`
}

// spendRules is one agent's compiled spend policy and its ledger.
type spendRules struct {
	policy *spend.Policy
	ledger *spend.Ledger
}

// compileSpend turns safety.spend into a policy. No limits: nil, and every
// payment is refused.
func compileSpend(s config.Spend, ledger *spend.Ledger) (*spendRules, error) {
	if len(s.Limits) == 0 {
		return nil, nil
	}
	if ledger == nil {
		return nil, errors.New("safety.spend is configured but no spend ledger was given (Rules.Ledger); payments would not be counted")
	}
	r := spend.Rules{Payees: s.Payees}
	for _, l := range s.Limits {
		sl := spend.Limit{Chain: uint64(l.Chain), Asset: l.Asset, PerPayment: l.PerPayment.Int(), PerHour: l.PerHour.Int(), PerDay: l.PerDay.Int()}
		if l.ApproveAbove != nil {
			sl.ApproveAbove = l.ApproveAbove.Int()
		}
		r.Limits = append(r.Limits, sl)
	}
	p, err := spend.Compile(r)
	if err != nil {
		return nil, fmt.Errorf("safety.%w", err)
	}
	return &spendRules{policy: p, ledger: ledger}, nil
}

// readPayment reads the payment an action carries.
func readPayment(a Action) (spend.Payment, error) {
	var p Payment
	if len(a.Args) == 0 {
		return spend.Payment{}, errors.New("it carries no payment (key, chain, asset, payee, amount)")
	}
	if err := json.Unmarshal(a.Args, &p); err != nil {
		return spend.Payment{}, fmt.Errorf("its payment cannot be read: %v", err)
	}
	amt, ok := new(big.Int).SetString(p.Amount, 10)
	if !ok {
		return spend.Payment{}, fmt.Errorf("its amount %q is not a decimal integer", p.Amount)
	}
	asset := p.Asset
	if asset == config.NativeAsset || asset == "" {
		asset = spend.Native
	}
	return spend.Payment{Key: p.Key, Chain: p.Chain, Asset: asset, Payee: p.Payee, Amount: amt, Purpose: p.Purpose}, nil
}

// decidePayment decides a payment on the rules and the ledger's current
// windows without reserving anything.
func (e *Engine) decidePayment(r *agentRules, a Action, d Decision) Decision {
	if r.spend == nil {
		d.Verdict, d.Rule = Deny, "safety.spend"
		d.Reason = fmt.Sprintf("%s moves money and payments are not enabled on agent %s (no spend policy is in force)", a.Name, a.Agent)
		return d
	}
	pay, err := readPayment(a)
	if err != nil {
		d.Verdict, d.Rule = Deny, "safety.spend"
		d.Reason = fmt.Sprintf("%s is denied: %v", a.Name, err)
		return d
	}
	return spendVerdict(d, r.spend.ledger.Check(r.spend.policy, pay, false))
}

func spendVerdict(d Decision, sd spend.Decision) Decision {
	d.Rule, d.Reason = "safety.spend."+sd.Rule, sd.Reason
	switch sd.Verdict {
	case spend.Allow:
		d.Verdict = Allow
	case spend.NeedsApproval:
		d.Verdict = NeedsApproval
	default:
		d.Verdict = Deny
	}
	return d
}

// authorizePayment is Authorize for a payment the dry run did not deny: it
// parks it for approval if it must, then reserves it on the ledger — the
// compare-and-swap that keeps concurrent payments under the caps — and
// audits the decision with the numbers it was made on. done commits the
// reservation with the transaction (PaymentResult), releases it on an
// ErrNotPaid error, and otherwise leaves it counted.
func (e *Engine) authorizePayment(ctx context.Context, a Action, d Decision) (func(json.RawMessage, error), error) {
	r := e.rules(a.Agent)
	pay, _ := readPayment(a) // Decide read it
	approved, ref := false, uint64(0)
	if d.Verdict == NeedsApproval {
		n, err := e.log.Write(ctx, Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseDecision, Decision: NeedsApproval, Reason: d.Reason, Rule: d.Rule, Args: a.Args})
		if err != nil {
			return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s refused: the audit log cannot record it: %v", a.Name, err), Retryable: true}
		}
		if _, err := e.await(ctx, a, d, n); err != nil {
			return nil, err
		}
		approved, ref = true, n
	}
	sd, err := r.spend.ledger.Reserve(ctx, r.spend.policy, pay, approved)
	if err != nil {
		return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s refused: the spend ledger cannot record it: %v", a.Name, err), Retryable: true}
	}
	d = spendVerdict(d, sd)
	if d.Verdict != Allow {
		// Lost a race for the room under a cap, or the key names another
		// payment: refused on record.
		e.deny(ctx, a, d)
		return nil, &wire.Error{Code: wire.CodeDenied, Message: d.Reason}
	}
	entry := Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseDecision, Decision: Allow, Reason: d.Reason, Rule: d.Rule, Args: a.Args, Ref: ref}
	n, err := e.log.Write(ctx, entry)
	if err != nil {
		if !sd.Replay {
			_ = r.spend.ledger.Release(context.WithoutCancel(ctx), pay.Key, "the decision could not be audited")
		}
		return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s refused: the audit log cannot record it: %v", a.Name, err), Retryable: true}
	}
	return func(result json.RawMessage, err error) {
		bg := context.WithoutCancel(ctx)
		var lerr error
		switch {
		case err == nil:
			var pr PaymentResult
			_ = json.Unmarshal(result, &pr)
			var actual *big.Int
			if v, ok := new(big.Int).SetString(pr.Amount, 10); ok {
				actual = v
			}
			lerr = r.spend.ledger.CommitAmount(bg, pay.Key, pr.Tx, actual)
		case errors.Is(err, ErrNotPaid):
			lerr = r.spend.ledger.Release(bg, pay.Key, err.Error())
		}
		if lerr != nil {
			e.logger.Error("spend ledger: outcome not recorded", "key", pay.Key, "err", lerr)
		}
		out := Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseOutcome, Ref: n, Result: result}
		if err != nil {
			we, ok := errors.AsType[*wire.Error](err)
			if !ok {
				we = &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
			}
			out.Error = we
		}
		if _, werr := e.log.Write(bg, out); werr != nil {
			e.logger.Error("audit: payment outcome not recorded", "action", a.Name, "ref", n, "err", werr)
		}
	}, nil
}

// Quote decides a payment without reserving or paying anything, and puts
// the quote on record: what a plugin's pay.quote is told.
func (e *Engine) Quote(ctx context.Context, a Action) (Decision, error) {
	d := e.Decide(ctx, a)
	_, err := e.log.Write(ctx, Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: PhaseEvent, Decision: d.Verdict, Reason: d.Reason, Rule: d.Rule, Args: a.Args})
	if err != nil {
		return d, fmt.Errorf("policy: quote not recorded: %w", err)
	}
	return d, nil
}

// Spent is what an agent's rolling hour and day hold for an asset on a
// chain ("native" or a token address); ok is false without a spend policy.
func (e *Engine) Spent(agent string, chain uint64, asset string) (hour, day *big.Int, ok bool) {
	r := e.rules(agent)
	if r.spend == nil {
		return nil, nil, false
	}
	if asset == config.NativeAsset {
		asset = spend.Native
	}
	hour, day = r.spend.ledger.Spent(chain, asset)
	return hour, day, true
}
