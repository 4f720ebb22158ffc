// Package spend decides whether an agent may make a payment, and keeps the
// durable ledger that the decision is made against.
//
// It is the money half of the core's policy engine, packaged on its own so it
// is tested on its own: the engine compiles the configured Rules into a
// Policy once, opens one Ledger in the agent's data directory, and for every
// payment calls Ledger.Reserve. Reserve decides allow, deny or needs-approval
// against the per-payment cap, the rolling per-hour and per-day caps and the
// allowlists of chains, assets and payees, and — only when it allows —
// records the reservation durably (fsync) before returning, with a
// compare-and-swap on the ledger's revision so that concurrent payments
// cannot together exceed a cap. After the money moved (or definitely did
// not) the engine calls Commit or Release.
//
// Approvals, timeouts, the e-stop and the audit record are the engine's: a
// NeedsApproval decision reserves nothing; once an operator approves, the
// engine calls Reserve again with Approved set, which skips only the approval
// threshold — the caps still hold.
//
// Amounts are integers in the asset's smallest unit (wei, or the token's
// base unit); caps are per (chain, asset), so no exchange rates are involved.
package spend

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

// Native names a chain's native coin in Payment.Asset and Limit.Asset.
const Native = "native"

// AnyPayee in Rules.Payees allows every payee.
const AnyPayee = "*"

// Rule names carried in Decision.Rule.
const (
	RulePayment     = "payment"            // the payment itself is malformed
	RuleChain       = "chain_allowlist"    // no limit names the chain
	RuleAsset       = "asset_allowlist"    // no limit names the asset on that chain
	RulePayee       = "payee_allowlist"    // the payee is not allowed
	RulePerPayment  = "per_payment_cap"    // the amount is above the per-payment cap
	RulePerHour     = "per_hour_cap"       // the rolling hour would exceed its cap
	RulePerDay      = "per_day_cap"        // the rolling day would exceed its cap
	RuleApproval    = "approval_threshold" // above the threshold: an operator must approve
	RuleIdempotency = "idempotency_key"    // the key was used for a different payment
	RuleReplay      = "already_reserved"   // the key was already reserved: nothing new is counted
	RuleWithin      = "within_limits"      // allowed
)

// Rules is the configured spend policy.
type Rules struct {
	// Payees lists the addresses that may be paid ("0x…"); AnyPayee allows
	// all. Empty denies every payment.
	Payees []string
	// Limits lists, per chain and asset, the caps. A payment on a chain or in
	// an asset that no limit names is denied: the limits are also the chain
	// and asset allowlists.
	Limits []Limit
}

// Limit holds the caps for one asset on one chain. The three caps are
// required (fail closed); ApproveAbove is optional.
type Limit struct {
	Chain        uint64   // EVM chain id
	Asset        string   // Native, or the token contract's address
	PerPayment   *big.Int // largest single payment
	PerHour      *big.Int // largest total within any rolling hour
	PerDay       *big.Int // largest total within any rolling 24 hours
	ApproveAbove *big.Int // payments above this wait for an operator; nil: never
}

// Policy is a validated, immutable Rules, safe for concurrent use.
type Policy struct {
	anyPayee bool
	payees   map[string]bool
	chains   map[uint64]bool
	limits   map[assetKey]Limit
}

type assetKey struct {
	chain uint64
	asset string
}

// Compile validates rules. Errors name the field (limits[i].per_hour, …) and
// the value.
func Compile(r Rules) (*Policy, error) {
	p := &Policy{payees: map[string]bool{}, chains: map[uint64]bool{}, limits: map[assetKey]Limit{}}
	for i, pe := range r.Payees {
		if pe == AnyPayee {
			p.anyPayee = true
			continue
		}
		a, err := normAddress(pe)
		if err != nil {
			return nil, fmt.Errorf("spend: payees[%d]: %w", i, err)
		}
		p.payees[a] = true
	}
	for i, l := range r.Limits {
		field := func(n string) string { return fmt.Sprintf("limits[%d].%s", i, n) }
		if l.Chain == 0 {
			return nil, fmt.Errorf("spend: %s: chain id is required", field("chain"))
		}
		asset, err := normAsset(l.Asset)
		if err != nil {
			return nil, fmt.Errorf("spend: %s: %w", field("asset"), err)
		}
		for name, v := range map[string]*big.Int{"per_payment": l.PerPayment, "per_hour": l.PerHour, "per_day": l.PerDay} {
			if v == nil {
				return nil, fmt.Errorf("spend: %s: required (a limit without a cap would allow any amount)", field(name))
			}
			if v.Sign() < 0 {
				return nil, fmt.Errorf("spend: %s: %s is negative", field(name), v)
			}
		}
		if l.ApproveAbove != nil && l.ApproveAbove.Sign() < 0 {
			return nil, fmt.Errorf("spend: %s: %s is negative", field("approve_above"), l.ApproveAbove)
		}
		k := assetKey{l.Chain, asset}
		if _, dup := p.limits[k]; dup {
			return nil, fmt.Errorf("spend: %s: a second limit for asset %s on chain %d", field("asset"), asset, l.Chain)
		}
		l.Asset = asset
		l.PerPayment, l.PerHour, l.PerDay = clone(l.PerPayment), clone(l.PerHour), clone(l.PerDay)
		if l.ApproveAbove != nil {
			l.ApproveAbove = clone(l.ApproveAbove)
		}
		p.limits[k] = l
		p.chains[l.Chain] = true
	}
	return p, nil
}

// Limit returns the limit for an asset on a chain.
func (p *Policy) Limit(chain uint64, asset string) (Limit, bool) {
	a, err := normAsset(asset)
	if err != nil {
		return Limit{}, false
	}
	l, ok := p.limits[assetKey{chain, a}]
	return l, ok
}

// Payment is one payment the agent is about to make.
type Payment struct {
	Key     string   // idempotency key: a retry with the same key is the same payment
	Chain   uint64   // EVM chain id
	Asset   string   // Native or the token contract address
	Payee   string   // recipient address
	Amount  *big.Int // in the asset's smallest unit
	Purpose string   // free text for the audit (the URL bought, the task paid)
}

// Verdict is the outcome of a decision. The zero value is Deny.
type Verdict int

// Verdicts.
const (
	Deny Verdict = iota
	Allow
	NeedsApproval
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case NeedsApproval:
		return "needs_approval"
	default:
		return "deny"
	}
}

// Decision is what Reserve decided and why; the core writes it to the audit.
type Decision struct {
	Verdict Verdict
	Rule    string // one of the Rule… constants
	Reason  string // names the rule and the numbers it compared
	Payment Payment
	// HourSpent and DaySpent are what the rolling windows held before this
	// payment (reserved and committed), nil when the decision did not get
	// that far.
	HourSpent, DaySpent *big.Int
	// Replay is true when the key was already reserved: the earlier
	// reservation stands and nothing was counted again.
	Replay bool
}

func (d Decision) String() string { return d.Verdict.String() + " (" + d.Rule + "): " + d.Reason }

// check validates a payment and normalises its addresses.
func check(pay Payment) (Payment, string) {
	if pay.Key == "" {
		return pay, "the idempotency key is empty"
	}
	if pay.Amount == nil || pay.Amount.Sign() <= 0 {
		return pay, fmt.Sprintf("amount %v is not a positive integer", pay.Amount)
	}
	if pay.Chain == 0 {
		return pay, "chain id is 0"
	}
	a, err := normAsset(pay.Asset)
	if err != nil {
		return pay, "asset: " + err.Error()
	}
	pe, err := normAddress(pay.Payee)
	if err != nil {
		return pay, "payee: " + err.Error()
	}
	pay.Asset, pay.Payee, pay.Amount = a, pe, clone(pay.Amount)
	return pay, ""
}

// decide applies the rules to a checked payment given the window totals.
func (p *Policy) decide(pay Payment, hour, day *big.Int, approved bool) Decision {
	d := Decision{Payment: pay}
	deny := func(rule, format string, args ...any) Decision {
		d.Verdict, d.Rule, d.Reason = Deny, rule, fmt.Sprintf(format, args...)
		return d
	}
	if !p.chains[pay.Chain] {
		return deny(RuleChain, "chain %d is not in the allowlist", pay.Chain)
	}
	l, ok := p.limits[assetKey{pay.Chain, pay.Asset}]
	if !ok {
		return deny(RuleAsset, "asset %s is not in the allowlist for chain %d", pay.Asset, pay.Chain)
	}
	if !p.anyPayee && !p.payees[pay.Payee] {
		return deny(RulePayee, "payee %s is not in the allowlist", pay.Payee)
	}
	if pay.Amount.Cmp(l.PerPayment) > 0 {
		return deny(RulePerPayment, "amount %s is above the per-payment cap %s (%s on chain %d)", pay.Amount, l.PerPayment, pay.Asset, pay.Chain)
	}
	d.HourSpent, d.DaySpent = hour, day
	if after := new(big.Int).Add(hour, pay.Amount); after.Cmp(l.PerHour) > 0 {
		return deny(RulePerHour, "%s spent in the last hour + %s = %s is above the per-hour cap %s (%s on chain %d)", hour, pay.Amount, after, l.PerHour, pay.Asset, pay.Chain)
	}
	if after := new(big.Int).Add(day, pay.Amount); after.Cmp(l.PerDay) > 0 {
		return deny(RulePerDay, "%s spent in the last 24 hours + %s = %s is above the per-day cap %s (%s on chain %d)", day, pay.Amount, after, l.PerDay, pay.Asset, pay.Chain)
	}
	if l.ApproveAbove != nil && pay.Amount.Cmp(l.ApproveAbove) > 0 && !approved {
		d.Verdict, d.Rule = NeedsApproval, RuleApproval
		d.Reason = fmt.Sprintf("amount %s is above the approval threshold %s (%s on chain %d)", pay.Amount, l.ApproveAbove, pay.Asset, pay.Chain)
		return d
	}
	d.Verdict, d.Rule = Allow, RuleWithin
	d.Reason = fmt.Sprintf("amount %s within per-payment cap %s; hour %s+%s of %s; day %s+%s of %s", pay.Amount, l.PerPayment, hour, pay.Amount, l.PerHour, day, pay.Amount, l.PerDay)
	if approved && l.ApproveAbove != nil && pay.Amount.Cmp(l.ApproveAbove) > 0 {
		d.Reason += "; approved by an operator above the threshold " + l.ApproveAbove.String()
	}
	return d
}

func normAsset(s string) (string, error) {
	if strings.EqualFold(s, Native) {
		return Native, nil
	}
	a, err := normAddress(s)
	if err != nil {
		return "", fmt.Errorf("%w (or %q for the native coin)", err, Native)
	}
	return a, nil
}

func normAddress(s string) (string, error) {
	if !common.IsHexAddress(s) || !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
		return "", fmt.Errorf("%q is not a 0x-prefixed 20-byte hex address", s)
	}
	return strings.ToLower(common.HexToAddress(s).Hex()), nil
}

func clone(v *big.Int) *big.Int { return new(big.Int).Set(v) }
