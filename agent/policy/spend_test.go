package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/wallet/spend"
	"github.com/depai/depai/sdk/wire"
)

const payee = "0x00000000000000000000000000000000000000b0"

// spendRules allow 10 wei per payment, 100 an hour, 1000 a day on chain
// 3338, to payee; above approve (if set) an operator must approve.
func spendRules(t testing.TB, dir string, approve int64) policy.Rules {
	t.Helper()
	l, err := spend.Open(spend.Config{Path: filepath.Join(dir, "spend.ledger")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	lim := config.SpendLimit{Chain: 3338, Asset: "native", PerPayment: amt(10), PerHour: amt(100), PerDay: amt(1000)}
	if approve > 0 {
		a := amt(approve)
		lim.ApproveAbove = &a
	}
	return policy.Rules{Spend: config.Spend{Payees: []string{payee}, Limits: []config.SpendLimit{lim}}, Ledger: l}
}

func amt(n int64) config.Amount { return config.NewAmount(big.NewInt(n)) }

var plugin = policy.Principal{Kind: policy.PrincipalPlugin, ID: "feed"}

func payAction(key string, amount int64, to string) policy.Action {
	args, _ := json.Marshal(policy.Payment{Key: key, Chain: 3338, Asset: "native", Payee: to, Amount: fmt.Sprint(amount)})
	return policy.Action{Agent: "rover-1", Principal: plugin, Kind: policy.ActionHost, Name: "pay.execute", Effect: wire.EffectPayment, Args: args}
}

func spentHour(t *testing.T, e *policy.Engine) int64 {
	t.Helper()
	h, _, ok := e.Spent("rover-1", 3338, "native")
	if !ok {
		t.Fatal("no spend policy")
	}
	return h.Int64()
}

// TestPaymentsCannotOverspendInParallel sends 64 payments of 10 at once
// against a cap of 100 an hour: exactly 10 pass, whatever the interleaving,
// and the audit log holds one allow decision per payment that passed.
func TestPaymentsCannotOverspendInParallel(t *testing.T) {
	dir := t.TempDir()
	f := &fixture{db: openStore(t), dir: dir}
	f.engine = newEngine(t, dir, f.db, spendRules(t, dir, 0), time.Minute)
	var allowed, denied atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			done, err := f.engine.Authorize(context.Background(), payAction(fmt.Sprintf("p%d", i), 10, payee))
			if err != nil {
				if we, ok := errors.AsType[*wire.Error](err); !ok || we.Code != wire.CodeDenied || !strings.Contains(we.Message, "per-hour cap 100") {
					t.Errorf("refusal: %v", err)
				}
				denied.Add(1)
				return
			}
			allowed.Add(1)
			done(json.RawMessage(fmt.Sprintf(`{"tx":"0x%02x"}`, i)), nil)
		})
	}
	wg.Wait()
	if allowed.Load() != 10 || denied.Load() != 54 {
		t.Fatalf("allowed %d, denied %d; want 10 and 54", allowed.Load(), denied.Load())
	}
	if h := spentHour(t, f.engine); h != 100 {
		t.Fatalf("the hour holds %d, want 100", h)
	}
	var decisions, outcomes int
	for _, e := range auditEntries(t, f.db) {
		if e.Action == "pay.execute" && e.Phase == policy.PhaseDecision && e.Decision == policy.Allow {
			decisions++
			if e.Rule != "safety.spend.within_limits" || !strings.Contains(e.Reason, "of 100") {
				t.Fatalf("allow decision on record without its numbers: %+v", e)
			}
		}
		if e.Action == "pay.execute" && e.Phase == policy.PhaseOutcome {
			outcomes++
		}
	}
	if decisions != 10 || outcomes != 10 {
		t.Fatalf("%d allow decisions and %d receipts on record, want 10 and 10", decisions, outcomes)
	}
}

func TestPaymentRules(t *testing.T) {
	dir := t.TempDir()
	f := &fixture{db: openStore(t), dir: dir}
	f.engine = newEngine(t, dir, f.db, spendRules(t, dir, 0), time.Minute)
	ctx := context.Background()
	refused := func(a policy.Action, want string) {
		t.Helper()
		if _, err := f.engine.Authorize(ctx, a); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v, want a refusal with %q", a.Args, err, want)
		}
	}
	refused(payAction("a", 11, payee), "above the per-payment cap 10")
	refused(payAction("b", 5, "0x00000000000000000000000000000000000000c0"), "not in the allowlist")
	other := payAction("c", 5, payee)
	other.Args = json.RawMessage(strings.Replace(string(other.Args), "3338", "1", 1))
	refused(other, "chain 1 is not in the allowlist")
	bad := payAction("d", 5, payee)
	bad.Args = json.RawMessage(`{"key":"d","amount":"lots"}`)
	refused(bad, `amount "lots" is not a decimal integer`)
	bad.Args = nil
	refused(bad, "carries no payment")

	// A retry with the same key is the same payment: counted once.
	done, err := f.engine.Authorize(ctx, payAction("k1", 7, payee))
	if err != nil {
		t.Fatal(err)
	}
	done(json.RawMessage(`{"tx":"0xaa"}`), nil)
	again, err := f.engine.Authorize(ctx, payAction("k1", 7, payee))
	if err != nil {
		t.Fatalf("retry refused: %v", err)
	}
	again(json.RawMessage(`{"tx":"0xaa"}`), nil)
	if h := spentHour(t, f.engine); h != 7 {
		t.Fatalf("the hour holds %d after a retry, want 7", h)
	}
	refused(payAction("k1", 8, payee), "was used for a different payment")

	// A payment that certainly did not happen gives its room back; one
	// that failed ambiguously keeps it.
	done, err = f.engine.Authorize(ctx, payAction("k2", 9, payee))
	if err != nil {
		t.Fatal(err)
	}
	done(nil, policy.NotPaid(errors.New("the node refused it")))
	done, err = f.engine.Authorize(ctx, payAction("k3", 3, payee))
	if err != nil {
		t.Fatal(err)
	}
	done(nil, errors.New("timed out waiting for the receipt"))
	if h := spentHour(t, f.engine); h != 10 {
		t.Fatalf("the hour holds %d, want 7 + 3 (the unpaid 9 released, the unsure 3 kept)", h)
	}

	// A quote decides on record and reserves nothing.
	q := payAction("q", 10, payee)
	q.Name = "pay.quote"
	d, err := f.engine.Quote(ctx, q)
	if err != nil || d.Verdict != policy.Allow {
		t.Fatalf("quote: %+v %v", d, err)
	}
	if h := spentHour(t, f.engine); h != 10 {
		t.Fatalf("a quote reserved: the hour holds %d", h)
	}
	var quoted bool
	for _, e := range auditEntries(t, f.db) {
		quoted = quoted || (e.Action == "pay.quote" && e.Phase == policy.PhaseEvent && e.Decision == policy.Allow)
	}
	if !quoted {
		t.Fatal("the quote is not on record")
	}
}

// TestPaymentsWithoutPolicyAreRefused: no safety.spend, no payment; and a
// spend policy without a ledger does not start.
func TestPaymentsWithoutPolicyAreRefused(t *testing.T) {
	f := newFixture(t, policy.Rules{})
	if _, err := f.engine.Authorize(context.Background(), payAction("a", 1, payee)); err == nil || !strings.Contains(err.Error(), "no spend policy is in force") {
		t.Fatalf("payment without a policy: %v", err)
	}
	r := spendRules(t, t.TempDir(), 0)
	r.Ledger = nil
	state, err := policy.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = policy.New(context.Background(), policy.Config{Log: openLog(t, f.db), State: state, Agents: map[string]policy.Rules{"rover-1": r}})
	if err == nil || !strings.Contains(err.Error(), "no spend ledger") {
		t.Fatalf("engine without a ledger: %v", err)
	}
}

func TestPaymentApprovalAndEStop(t *testing.T) {
	dir := t.TempDir()
	f := &fixture{db: openStore(t), dir: dir}
	f.engine = newEngine(t, dir, f.db, spendRules(t, dir, 5), time.Minute)
	ctx := context.Background()
	result := make(chan error, 1)
	authorize := func(a policy.Action) {
		go func() {
			done, err := f.engine.Authorize(ctx, a)
			if done != nil {
				done(json.RawMessage(`{"tx":"0x01"}`), nil)
			}
			result <- err
		}()
	}
	// Above the threshold: parked; approved, it is paid and counted.
	authorize(payAction("big-1", 8, payee))
	pending := waitApprovals(t, f.engine, 1)
	if !strings.Contains(pending[0].Reason, "above the approval threshold 5") {
		t.Fatalf("approval reason: %q", pending[0].Reason)
	}
	if h := spentHour(t, f.engine); h != 0 {
		t.Fatalf("a parked payment is counted: %d", h)
	}
	if err := f.engine.Approve(ctx, pending[0].ID, operator); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatalf("approved payment refused: %v", err)
	}
	// Denied by an operator: nothing counted.
	authorize(payAction("big-2", 9, payee))
	pending = waitApprovals(t, f.engine, 1)
	if err := f.engine.DenyApproval(ctx, pending[0].ID, operator, "too dear"); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err == nil || !strings.Contains(err.Error(), "too dear") {
		t.Fatalf("denied payment: %v", err)
	}
	if h := spentHour(t, f.engine); h != 8 {
		t.Fatalf("the hour holds %d, want only the approved 8", h)
	}
	// Nobody answers: denied at the timeout.
	sdir := t.TempDir()
	short := newEngine(t, sdir, f.db, spendRules(t, sdir, 5), 50*time.Millisecond)
	if _, err := short.Authorize(ctx, payAction("big-3", 9, payee)); err == nil || !strings.Contains(err.Error(), "nobody approved") {
		t.Fatalf("timed-out payment: %v", err)
	}

	// The e-stop blocks every payment, also one that waits for approval,
	// until an admin resumes.
	authorize(payAction("big-4", 9, payee))
	pending = waitApprovals(t, f.engine, 1)
	if err := f.engine.Stop(ctx, viewer, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.Authorize(ctx, payAction("small", 1, payee)); err == nil || !strings.Contains(err.Error(), "emergency stop is engaged") {
		t.Fatalf("payment under the e-stop: %v", err)
	}
	if err := f.engine.Approve(ctx, pending[0].ID, operator); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err == nil || !strings.Contains(err.Error(), "emergency stop") {
		t.Fatalf("payment approved under the e-stop: %v", err)
	}
	if err := f.engine.Resume(ctx, admin); err != nil {
		t.Fatal(err)
	}
	done, err := f.engine.Authorize(ctx, payAction("small", 1, payee))
	if err != nil {
		t.Fatalf("payment after resume: %v", err)
	}
	done(json.RawMessage(`{"tx":"0x02"}`), nil)
	if h := spentHour(t, f.engine); h != 9 {
		t.Fatalf("the hour holds %d, want 8 + 1", h)
	}
}

// TestPaymentSettledForLess: an outcome reporting that less moved (an x402
// upto payment) counts only that against the caps.
func TestPaymentSettledForLess(t *testing.T) {
	dir := t.TempDir()
	f := &fixture{db: openStore(t), dir: dir}
	f.engine = newEngine(t, dir, f.db, spendRules(t, dir, 0), time.Minute)
	done, err := f.engine.Authorize(context.Background(), payAction("upto-1", 10, payee))
	if err != nil {
		t.Fatal(err)
	}
	done(json.RawMessage(`{"tx":"0x01","amount":"3"}`), nil)
	if h := spentHour(t, f.engine); h != 3 {
		t.Fatalf("the hour holds %d, want the 3 settled of the 10 reserved", h)
	}
}
