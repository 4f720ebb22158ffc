// Package earnings splits a co-owned machine's income among its owners and a
// treasury by configured shares, and pays the shares out when what is held
// reaches a threshold, or on a schedule.
//
// Income (x402 sales, task payments) is recorded with Earn. Payout, when the
// held amount reaches the threshold (PayoutHeld: whenever anything is held,
// for a scheduled payout), fixes a round — each payee's amount,
// journaled (fsync) before anything is paid — and pays it through a Payer,
// which is the core's policy-checked wallet: the split is decided here, but
// every transfer passes the same spend policy as any other payment. Each
// transfer's idempotency key names the round and the payee, so a round cut
// short by a crash is finished after a restart without paying anyone twice.
package earnings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/internal/journal"
)

// Share is one payee's weight in the split.
type Share struct {
	Name   string // for the operator: "alice", "treasury"
	Payee  common.Address
	Weight uint64
}

// Config configures a Splitter.
type Config struct {
	// Path is the earnings journal in the agent's data directory.
	Path string
	// Asset is what is earned and paid out (wallet.Native or a token).
	Asset common.Address
	// Owners share the income by weight; Treasury takes its weight and the
	// rounding remainder, so every unit earned is paid to someone.
	Owners   []Share
	Treasury Share
	// Threshold is the held amount at which Payout pays. Nil: Payout only
	// finishes unfinished rounds, and payouts run on the caller's schedule
	// through PayoutHeld.
	Threshold *big.Int
}

// Payer pays one transfer; the core passes the wallet wrapped in its spend
// policy.
type Payer interface {
	Pay(ctx context.Context, t wallet.Transfer) (*wallet.Receipt, error)
}

// Splitter holds a machine's earnings. Its methods are safe for concurrent
// use; Payout runs one round at a time. Lock order: payMu → mu → journal.
type Splitter struct {
	cfg    Config
	shares []Share // owners then treasury
	total  uint64
	j      *journal.File

	payMu sync.Mutex

	mu     sync.Mutex
	keys   map[string]bool // earning keys seen
	earned *big.Int
	paid   *big.Int
	rounds []*round
}

type round struct {
	N       int
	Amounts []*big.Int // per share, in shares order
	Tx      []string   // per share once paid
}

func (r *round) done() bool {
	for i, a := range r.Amounts {
		if a.Sign() > 0 && r.Tx[i] == "" {
			return false
		}
	}
	return true
}

type record struct {
	Op     string   `json:"op"` // earn, round, paid
	Key    string   `json:"key,omitempty"`
	Amount string   `json:"amount,omitempty"`
	Source string   `json:"source,omitempty"`
	Round  int      `json:"round,omitempty"`
	Split  []string `json:"split,omitempty"`
	Payee  int      `json:"payee,omitempty"`
	Tx     string   `json:"tx,omitempty"`
}

// Open validates cfg and replays the journal.
func Open(cfg Config) (*Splitter, error) {
	if cfg.Path == "" {
		return nil, errors.New("earnings: Config.Path is empty")
	}
	if cfg.Threshold != nil && cfg.Threshold.Sign() <= 0 {
		return nil, fmt.Errorf("earnings: Config.Threshold %v must be positive (or nil: scheduled payouts only)", cfg.Threshold)
	}
	s := &Splitter{cfg: cfg, keys: map[string]bool{}, earned: new(big.Int), paid: new(big.Int)}
	s.shares = append(append([]Share(nil), cfg.Owners...), cfg.Treasury)
	seen := map[common.Address]bool{}
	for i, sh := range s.shares {
		field := fmt.Sprintf("owners[%d]", i)
		if i == len(cfg.Owners) {
			field = "treasury"
		}
		if sh.Payee == (common.Address{}) {
			return nil, fmt.Errorf("earnings: %s.payee is not set", field)
		}
		if seen[sh.Payee] {
			return nil, fmt.Errorf("earnings: %s.payee %s appears twice", field, sh.Payee)
		}
		seen[sh.Payee] = true
		s.total += sh.Weight
	}
	if s.total == 0 {
		return nil, errors.New("earnings: every weight is 0")
	}
	j, err := journal.Open(cfg.Path, s.replay)
	if err != nil {
		return nil, fmt.Errorf("earnings: %w", err)
	}
	s.j = j
	return s, nil
}

func (s *Splitter) replay(_ int, p []byte) error {
	var r record
	if err := json.Unmarshal(p, &r); err != nil {
		return fmt.Errorf("earnings record: %w", err)
	}
	switch r.Op {
	case "earn":
		a, ok := new(big.Int).SetString(r.Amount, 10)
		if !ok {
			return fmt.Errorf("earnings record: amount %q", r.Amount)
		}
		s.keys[r.Key] = true
		s.earned.Add(s.earned, a)
	case "round":
		if len(r.Split) != len(s.shares) {
			return fmt.Errorf("earnings record: round %d splits among %d payees; the configuration has %d (finish or move the journal before changing shares)", r.Round, len(r.Split), len(s.shares))
		}
		rd := &round{N: r.Round, Tx: make([]string, len(r.Split))}
		for _, a := range r.Split {
			v, ok := new(big.Int).SetString(a, 10)
			if !ok {
				return fmt.Errorf("earnings record: round amount %q", a)
			}
			rd.Amounts = append(rd.Amounts, v)
			s.paid.Add(s.paid, v)
		}
		s.rounds = append(s.rounds, rd)
	case "paid":
		if r.Round < 1 || r.Round > len(s.rounds) || r.Payee < 0 || r.Payee >= len(s.shares) {
			return fmt.Errorf("earnings record: payment for round %d payee %d that does not exist", r.Round, r.Payee)
		}
		s.rounds[r.Round-1].Tx[r.Payee] = r.Tx
	default:
		return fmt.Errorf("earnings record: unknown op %q", r.Op)
	}
	return nil
}

// Earn records income once per key (a retried sale is not counted twice).
func (s *Splitter) Earn(ctx context.Context, key string, amount *big.Int, source string) error {
	if key == "" || amount == nil || amount.Sign() <= 0 {
		return fmt.Errorf("earnings: earn needs a key and a positive amount (got %q, %v)", key, amount)
	}
	b, _ := json.Marshal(record{Op: "earn", Key: key, Amount: amount.String(), Source: source})
	s.mu.Lock()
	if s.keys[key] {
		s.mu.Unlock()
		return nil
	}
	seq, err := s.j.Append(b)
	if err == nil {
		s.keys[key] = true
		s.earned.Add(s.earned, amount)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("earnings: %w", err)
	}
	return s.j.Sync(seq)
}

// Status is what /earnings shows.
type Status struct {
	Earned  *big.Int
	PaidOut *big.Int // transfers made
	Paying  *big.Int // fixed in a round, not yet paid (in flight, or refused and waiting)
	Held    *big.Int // earned and not yet in a round
	// Threshold is nil without one (scheduled payouts only).
	Threshold *big.Int
	Rounds    int
	Pending   bool // a round is not fully paid yet
	PerPayee  []PayeeStatus
}

// PayeeStatus is one payee's total.
type PayeeStatus struct {
	Share  Share
	Paid   *big.Int // transfers made
	Paying *big.Int // in an unfinished round
}

// Status reports the totals.
func (s *Splitter) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Earned: new(big.Int).Set(s.earned), PaidOut: new(big.Int), Paying: new(big.Int), Held: new(big.Int).Sub(s.earned, s.paid), Rounds: len(s.rounds)}
	if s.cfg.Threshold != nil {
		st.Threshold = new(big.Int).Set(s.cfg.Threshold)
	}
	for i, sh := range s.shares {
		ps := PayeeStatus{Share: sh, Paid: new(big.Int), Paying: new(big.Int)}
		for _, r := range s.rounds {
			if r.Tx[i] != "" {
				ps.Paid.Add(ps.Paid, r.Amounts[i])
			} else {
				ps.Paying.Add(ps.Paying, r.Amounts[i])
			}
		}
		st.PaidOut.Add(st.PaidOut, ps.Paid)
		st.Paying.Add(st.Paying, ps.Paying)
		st.PerPayee = append(st.PerPayee, ps)
	}
	if n := len(s.rounds); n > 0 && !s.rounds[n-1].done() {
		st.Pending = true
	}
	return st
}

// Split divides amount by the weights; the remainder goes to the treasury.
func (s *Splitter) Split(amount *big.Int) []*big.Int {
	out := make([]*big.Int, len(s.shares))
	rest := new(big.Int).Set(amount)
	for i, sh := range s.shares {
		v := new(big.Int).Mul(amount, new(big.Int).SetUint64(sh.Weight))
		v.Quo(v, new(big.Int).SetUint64(s.total))
		out[i] = v
		rest.Sub(rest, v)
	}
	out[len(out)-1].Add(out[len(out)-1], rest)
	return out
}

// Payout finishes an unfinished round, then, if what is held reaches the
// threshold, fixes a new round of everything held and pays it. It returns
// the receipts of the transfers made (or found already made); an error from
// the Payer (a policy refusal, a revert) stops the round, which the next
// Payout resumes with the same idempotency keys.
func (s *Splitter) Payout(ctx context.Context, p Payer) ([]*wallet.Receipt, error) {
	return s.payout(ctx, p, s.cfg.Threshold)
}

// PayoutHeld is Payout for a scheduled payout: it finishes an unfinished
// round, then pays out whatever is held, threshold or not.
func (s *Splitter) PayoutHeld(ctx context.Context, p Payer) ([]*wallet.Receipt, error) {
	return s.payout(ctx, p, big.NewInt(1))
}

// payout pays a new round when at least atLeast is held (nil: never).
func (s *Splitter) payout(ctx context.Context, p Payer, atLeast *big.Int) ([]*wallet.Receipt, error) {
	s.payMu.Lock()
	defer s.payMu.Unlock()
	var out []*wallet.Receipt
	s.mu.Lock()
	var rd *round
	if n := len(s.rounds); n > 0 && !s.rounds[n-1].done() {
		rd = s.rounds[n-1]
	}
	held := new(big.Int).Sub(s.earned, s.paid)
	if rd == nil && atLeast != nil && held.Cmp(atLeast) >= 0 {
		rd = &round{N: len(s.rounds) + 1, Amounts: s.Split(held), Tx: make([]string, len(s.shares))}
		split := make([]string, len(rd.Amounts))
		for i, a := range rd.Amounts {
			split[i] = a.String()
		}
		b, _ := json.Marshal(record{Op: "round", Round: rd.N, Split: split})
		if err := s.j.AppendSync(b); err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("earnings: fix round %d: %w", rd.N, err)
		}
		s.rounds = append(s.rounds, rd)
		s.paid.Add(s.paid, held)
	}
	s.mu.Unlock()
	if rd == nil {
		return nil, nil
	}
	for i, a := range rd.Amounts {
		if a.Sign() == 0 || rd.Tx[i] != "" {
			continue
		}
		sh := s.shares[i]
		key := fmt.Sprintf("earnings:%s:round-%d:%s", strings.ToLower(s.cfg.Asset.Hex()), rd.N, strings.ToLower(sh.Payee.Hex()))
		r, err := p.Pay(ctx, wallet.Transfer{Key: key, Asset: s.cfg.Asset, To: sh.Payee, Amount: a})
		if err != nil {
			return out, fmt.Errorf("earnings: round %d: pay %s (%s) %s: %w", rd.N, sh.Name, sh.Payee, a, err)
		}
		out = append(out, r)
		b, _ := json.Marshal(record{Op: "paid", Round: rd.N, Payee: i, Tx: r.TxHash.Hex()})
		if err := s.j.AppendSync(b); err != nil {
			return out, fmt.Errorf("earnings: round %d: %w", rd.N, err)
		}
		s.mu.Lock()
		rd.Tx[i] = r.TxHash.Hex()
		s.mu.Unlock()
	}
	return out, nil
}

// Close closes the journal.
func (s *Splitter) Close() error { return s.j.Close() }
