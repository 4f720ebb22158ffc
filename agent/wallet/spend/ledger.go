package spend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/depai/depai/agent/wallet/internal/journal"
)

// Config configures a Ledger.
type Config struct {
	// Path is the ledger file, normally in the agent's data directory.
	Path string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Retain is how long a payment's key is remembered for idempotency; at
	// least 24 hours (the longest window). Zero means 7 days.
	Retain time.Duration
}

// State is where a reservation stands.
type State string

// States of an Entry.
const (
	Reserved  State = "reserved"  // counted; the money may be moving
	Committed State = "committed" // counted; the money moved
	Released  State = "released"  // not counted; the money did not move
)

// Entry is one reservation in the ledger.
type Entry struct {
	Payment  Payment
	At       time.Time
	Approved bool
	State    State
	Tx       string // set by Commit
	Reason   string // set by Release
}

// Ledger is the durable record of payments that the caps are checked against.
// Its methods are safe for concurrent use. Lock order: Ledger.mu → journal.
type Ledger struct {
	j      *journal.File
	now    func() time.Time
	retain time.Duration

	mu      sync.Mutex
	byKey   map[string]*entry
	order   []*entry // reservations by time, so keys older than retain are forgotten
	windows map[assetKey]*window
	last    time.Time // latest reservation time; reservation times never go back
}

type entry struct {
	Entry
	key assetKey
}

func (e *entry) counts() bool { return e.State != Released }

// record is one journal line.
type record struct {
	Op       string `json:"op"` // reserve, commit, release
	Key      string `json:"key"`
	Chain    uint64 `json:"chain,omitempty"`
	Asset    string `json:"asset,omitempty"`
	Payee    string `json:"payee,omitempty"`
	Amount   string `json:"amount,omitempty"`
	Purpose  string `json:"purpose,omitempty"`
	At       int64  `json:"at,omitempty"` // unix nanoseconds
	Approved bool   `json:"approved,omitempty"`
	Tx       string `json:"tx,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Open opens (or creates) the ledger file and replays it.
func Open(cfg Config) (*Ledger, error) {
	if cfg.Path == "" {
		return nil, errors.New("spend: Config.Path is empty")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Retain == 0:
		cfg.Retain = 7 * 24 * time.Hour
	case cfg.Retain < 24*time.Hour:
		return nil, fmt.Errorf("spend: Config.Retain %v is shorter than the 24-hour window", cfg.Retain)
	}
	l := &Ledger{now: cfg.Now, retain: cfg.Retain, byKey: map[string]*entry{}, windows: map[assetKey]*window{}}
	var order []*entry
	records := 0
	j, err := journal.Open(cfg.Path, func(_ int, payload []byte) error {
		records++
		var r record
		if err := json.Unmarshal(payload, &r); err != nil {
			return fmt.Errorf("spend ledger record: %w", err)
		}
		switch r.Op {
		case "reserve":
			amt, ok := new(big.Int).SetString(r.Amount, 10)
			if !ok {
				return fmt.Errorf("spend ledger record: amount %q is not an integer", r.Amount)
			}
			e := &entry{Entry: Entry{
				Payment:  Payment{Key: r.Key, Chain: r.Chain, Asset: r.Asset, Payee: r.Payee, Amount: amt, Purpose: r.Purpose},
				At:       time.Unix(0, r.At),
				Approved: r.Approved,
				State:    Reserved,
			}, key: assetKey{r.Chain, r.Asset}}
			l.byKey[r.Key] = e // a re-reservation after a release replaces the old entry
			order = append(order, e)
		case "commit", "release":
			e := l.byKey[r.Key]
			if e == nil {
				return fmt.Errorf("spend ledger record: %s of unknown key %q", r.Op, r.Key)
			}
			if r.Op == "commit" {
				e.State, e.Tx = Committed, r.Tx
				if r.Amount != "" { // committed for less than reserved (CommitAmount)
					amt, ok := new(big.Int).SetString(r.Amount, 10)
					if !ok || amt.Sign() < 0 {
						return fmt.Errorf("spend ledger record: commit amount %q is not an integer", r.Amount)
					}
					e.Payment.Amount = amt
				}
			} else {
				e.State, e.Reason = Released, r.Reason
			}
		default:
			return fmt.Errorf("spend ledger record: unknown op %q", r.Op)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	l.j = j
	now := l.now()
	var live []*entry
	for _, e := range order {
		if l.byKey[e.Payment.Key] != e || now.Sub(e.At) > l.retain {
			if l.byKey[e.Payment.Key] == e {
				delete(l.byKey, e.Payment.Key)
			}
			continue
		}
		live = append(live, e)
		l.order = append(l.order, e)
		l.window(e.key).add(e)
		if e.At.After(l.last) {
			l.last = e.At
		}
	}
	// Compact when most lines are dead, so the file does not grow forever.
	if records > 1024 && records > 4*len(live) {
		var payloads [][]byte
		for _, e := range live {
			payloads = append(payloads, e.records()...)
		}
		if err := j.Rewrite(payloads); err != nil {
			j.Close()
			return nil, fmt.Errorf("spend: %w", err)
		}
	}
	return l, nil
}

func (e *entry) records() [][]byte {
	p := e.Payment
	out := [][]byte{mustJSON(record{Op: "reserve", Key: p.Key, Chain: p.Chain, Asset: p.Asset, Payee: p.Payee,
		Amount: p.Amount.String(), Purpose: p.Purpose, At: e.At.UnixNano(), Approved: e.Approved})}
	switch e.State {
	case Committed:
		out = append(out, mustJSON(record{Op: "commit", Key: p.Key, Tx: e.Tx}))
	case Released:
		out = append(out, mustJSON(record{Op: "release", Key: p.Key, Reason: e.Reason}))
	}
	return out
}

func mustJSON(r record) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // a record holds only strings and numbers
	}
	return b
}

func (l *Ledger) window(k assetKey) *window {
	w := l.windows[k]
	if w == nil {
		w = &window{}
		l.windows[k] = w
	}
	return w
}

// Reserve decides the payment under pol and, if it is allowed, records it
// durably before returning. approved says an operator approved this very
// payment; it lifts only the approval threshold.
//
// A payment whose key is already reserved or committed is not counted again:
// Reserve returns Allow with Replay set if it is the same payment, and Deny
// (RuleIdempotency) if the key names a different one. A key whose earlier
// reservation was released is decided afresh.
//
// The decision is made on a snapshot of the rolling windows and committed
// with a compare-and-swap on the window's revision; a concurrent change
// makes it decide again, so two payments cannot both fit into the same room
// under a cap.
//
// An error means the ledger could not record the decision; the payment must
// not proceed.
func (l *Ledger) Reserve(ctx context.Context, pol *Policy, pay Payment, approved bool) (Decision, error) {
	if pol == nil {
		return Decision{Rule: RulePayment, Reason: "no spend policy configured", Payment: pay}, nil
	}
	pay, bad := check(pay)
	if bad != "" {
		return Decision{Rule: RulePayment, Reason: bad, Payment: pay}, nil
	}
	k := assetKey{pay.Chain, pay.Asset}
	for {
		if err := ctx.Err(); err != nil {
			return Decision{}, fmt.Errorf("spend: reserve %q: %w", pay.Key, err)
		}
		l.mu.Lock()
		if d, done := l.replayed(pay); done {
			l.mu.Unlock()
			return d, nil
		}
		now := l.clock()
		w := l.window(k)
		w.advance(now)
		rev := w.rev
		hour, day := clone(&w.hour), clone(&w.day)
		l.mu.Unlock()

		d := pol.decide(pay, hour, day, approved)
		if d.Verdict != Allow {
			return d, nil
		}

		l.mu.Lock()
		if w.rev != rev {
			l.mu.Unlock()
			continue // someone else reserved or released in this window: decide again
		}
		if d, done := l.replayed(pay); done {
			l.mu.Unlock()
			return d, nil
		}
		e := &entry{Entry: Entry{Payment: pay, At: now, Approved: approved, State: Reserved}, key: k}
		seq, err := l.j.Append(e.records()[0])
		if err != nil {
			l.mu.Unlock()
			return Decision{}, fmt.Errorf("spend: reserve %q: %w", pay.Key, err)
		}
		l.byKey[pay.Key] = e
		l.order = append(l.order, e)
		l.forget(now)
		w.add(e)
		l.last = now
		l.mu.Unlock()
		if err := l.j.Sync(seq); err != nil {
			// Counted in memory (conservative) but not durable: refuse.
			return Decision{}, fmt.Errorf("spend: reserve %q: %w", pay.Key, err)
		}
		return d, nil
	}
}

// Check decides pay as Reserve would now, without reserving anything: what
// the policy engine shows (a quote, a dry run) before it reserves.
func (l *Ledger) Check(pol *Policy, pay Payment, approved bool) Decision {
	if pol == nil {
		return Decision{Rule: RulePayment, Reason: "no spend policy configured", Payment: pay}
	}
	pay, bad := check(pay)
	if bad != "" {
		return Decision{Rule: RulePayment, Reason: bad, Payment: pay}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, done := l.replayed(pay); done {
		return d
	}
	w := l.window(assetKey{pay.Chain, pay.Asset})
	w.advance(l.clock())
	return pol.decide(pay, clone(&w.hour), clone(&w.day), approved)
}

// forget drops keys older than retain, so a long-running agent's memory
// stays bounded by the retention period (the file is compacted at Open).
// Called with l.mu held.
func (l *Ledger) forget(now time.Time) {
	i := 0
	for i < len(l.order) && now.Sub(l.order[i].At) > l.retain {
		if e := l.order[i]; l.byKey[e.Payment.Key] == e {
			delete(l.byKey, e.Payment.Key)
		}
		i++
	}
	if i > 0 {
		n := copy(l.order, l.order[i:])
		clear(l.order[n:])
		l.order = l.order[:n]
	}
}

// clock returns now, never earlier than the last reservation, so the windows
// only move forward. Called with l.mu held.
func (l *Ledger) clock() time.Time {
	now := l.now()
	if now.Before(l.last) {
		return l.last
	}
	return now
}

// replayed answers a payment whose key is live. Called with l.mu held.
func (l *Ledger) replayed(pay Payment) (Decision, bool) {
	e := l.byKey[pay.Key]
	if e == nil || !e.counts() {
		return Decision{}, false
	}
	p := e.Payment
	if p.Chain != pay.Chain || p.Asset != pay.Asset || p.Payee != pay.Payee || p.Amount.Cmp(pay.Amount) != 0 {
		return Decision{Verdict: Deny, Rule: RuleIdempotency, Payment: pay,
			Reason: fmt.Sprintf("key %q was used for a different payment (%s of %s to %s on chain %d)", pay.Key, p.Amount, p.Asset, p.Payee, p.Chain)}, true
	}
	return Decision{Verdict: Allow, Rule: RuleReplay, Payment: p, Replay: true,
		Reason: fmt.Sprintf("key %q is already %s at %s; not counted again", pay.Key, e.State, e.At.UTC().Format(time.RFC3339))}, true
}

// Commit marks a reservation as paid, with the transaction that paid it.
func (l *Ledger) Commit(ctx context.Context, key, tx string) error {
	return l.CommitAmount(ctx, key, tx, nil)
}

// CommitAmount is Commit for a payment that moved less than was reserved —
// an x402 "upto" payment authorizes a maximum and the seller settles what
// the request actually cost: from then on only actual counts against the
// caps. A nil actual, or one not below the reservation, counts the whole
// reservation; one above it is refused (the reservation stays counted).
func (l *Ledger) CommitAmount(ctx context.Context, key, tx string, actual *big.Int) error {
	return l.finish(key, func(e *entry) (record, error) {
		switch e.State {
		case Committed:
			if e.Tx == tx {
				return record{}, errNoop
			}
			return record{}, fmt.Errorf("spend: commit %q: already committed with transaction %s", key, e.Tx)
		case Released:
			return record{}, fmt.Errorf("spend: commit %q: it was released (%s)", key, e.Reason)
		}
		rec := record{Op: "commit", Key: key, Tx: tx}
		if actual != nil {
			switch actual.Cmp(e.Payment.Amount) {
			case 1:
				return record{}, fmt.Errorf("spend: commit %q: %s moved, more than the %s reserved", key, actual, e.Payment.Amount)
			case -1:
				if actual.Sign() < 0 {
					return record{}, fmt.Errorf("spend: commit %q: negative amount %s", key, actual)
				}
				l.window(e.key).shrink(e, new(big.Int).Sub(e.Payment.Amount, actual))
				e.Payment.Amount = new(big.Int).Set(actual)
				rec.Amount = actual.String()
			}
		}
		e.State, e.Tx = Committed, tx
		return rec, nil
	})
}

// Release returns a reservation's amount to the windows: call it only when
// the money certainly did not move (the transaction was never sent, or it
// reverted, or the seller refused the signed authorization and it expired).
func (l *Ledger) Release(ctx context.Context, key, reason string) error {
	return l.finish(key, func(e *entry) (record, error) {
		switch e.State {
		case Released:
			return record{}, errNoop
		case Committed:
			return record{}, fmt.Errorf("spend: release %q: already committed with transaction %s", key, e.Tx)
		}
		l.window(e.key).release(e)
		e.State, e.Reason = Released, reason
		return record{Op: "release", Key: key, Reason: reason}, nil
	})
}

var errNoop = errors.New("no change")

func (l *Ledger) finish(key string, change func(*entry) (record, error)) error {
	l.mu.Lock()
	e := l.byKey[key]
	if e == nil {
		l.mu.Unlock()
		return fmt.Errorf("spend: no reservation with key %q", key)
	}
	r, err := change(e)
	if err == errNoop {
		l.mu.Unlock()
		return nil
	}
	if err != nil {
		l.mu.Unlock()
		return err
	}
	seq, err := l.j.Append(mustJSON(r))
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("spend: %s %q: %w", r.Op, key, err)
	}
	return l.j.Sync(seq)
}

// Get returns the reservation with key.
func (l *Ledger) Get(key string) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.byKey[key]
	if e == nil {
		return Entry{}, false
	}
	out := e.Entry
	out.Payment.Amount = clone(e.Payment.Amount)
	return out, true
}

// Spent returns what the rolling hour and day hold for an asset on a chain.
func (l *Ledger) Spent(chain uint64, asset string) (hour, day *big.Int) {
	a, err := normAsset(asset)
	if err != nil {
		return new(big.Int), new(big.Int)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.window(assetKey{chain, a})
	w.advance(l.clock())
	return clone(&w.hour), clone(&w.day)
}

// Close closes the ledger file.
func (l *Ledger) Close() error { return l.j.Close() }

// window holds the reservations of one asset within the last 24 hours, in
// time order, with running totals for the rolling hour and day.
type window struct {
	ents      []*entry
	hourHead  int // first entry inside the hour
	dayHead   int // first entry inside the day
	hour, day big.Int
	now       time.Time // the time the heads were advanced to
	rev       uint64    // changes with every add or release
}

func (w *window) advance(now time.Time) {
	if now.Before(w.now) {
		now = w.now
	}
	w.now = now
	hourCut, dayCut := now.Add(-time.Hour), now.Add(-24*time.Hour)
	for w.hourHead < len(w.ents) && !w.ents[w.hourHead].At.After(hourCut) {
		if e := w.ents[w.hourHead]; e.counts() {
			w.hour.Sub(&w.hour, e.Payment.Amount)
		}
		w.hourHead++
	}
	for w.dayHead < len(w.ents) && !w.ents[w.dayHead].At.After(dayCut) {
		if e := w.ents[w.dayHead]; e.counts() {
			w.day.Sub(&w.day, e.Payment.Amount)
		}
		w.dayHead++
	}
	if w.dayHead > 256 && w.dayHead > len(w.ents)/2 {
		n := copy(w.ents, w.ents[w.dayHead:])
		clear(w.ents[n:])
		w.ents = w.ents[:n]
		w.hourHead -= w.dayHead
		w.dayHead = 0
	}
}

// add appends an entry; its time is not before any earlier entry's.
func (w *window) add(e *entry) {
	w.advance(e.At)
	w.ents = append(w.ents, e)
	if e.counts() {
		if e.At.After(w.now.Add(-time.Hour)) {
			w.hour.Add(&w.hour, e.Payment.Amount)
		}
		if e.At.After(w.now.Add(-24 * time.Hour)) {
			w.day.Add(&w.day, e.Payment.Amount)
		}
	}
	w.rev++
}

// shrink counts delta less of a counted entry.
func (w *window) shrink(e *entry, delta *big.Int) {
	if !e.counts() {
		return
	}
	if e.At.After(w.now.Add(-time.Hour)) {
		w.hour.Sub(&w.hour, delta)
	}
	if e.At.After(w.now.Add(-24 * time.Hour)) {
		w.day.Sub(&w.day, delta)
	}
	w.rev++
}

// release stops counting a reserved entry.
func (w *window) release(e *entry) { w.shrink(e, e.Payment.Amount) }
