package spend

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depai/depai/agent/wallet/internal/journal"
)

const (
	payeeA = "0x00000000000000000000000000000000000000aa"
	payeeB = "0x00000000000000000000000000000000000000bb"
	token  = "0x0000000000000000000000000000000000000c0c"
)

func n(v int64) *big.Int { return big.NewInt(v) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testPolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := Compile(Rules{
		Payees: []string{payeeA},
		Limits: []Limit{{Chain: 3338, Asset: token, PerPayment: n(100), PerHour: n(250), PerDay: n(400), ApproveAbove: n(60)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func openLedger(t testing.TB, path string, c *clock) *Ledger {
	t.Helper()
	l, err := Open(Config{Path: path, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func pay(key string, amount int64) Payment {
	return Payment{Key: key, Chain: 3338, Asset: token, Payee: payeeA, Amount: n(amount)}
}

func TestDecisions(t *testing.T) {
	ctx := context.Background()
	pol := testPolicy(t)
	cases := []struct {
		name     string
		pay      Payment
		approved bool
		verdict  Verdict
		rule     string
		reason   string
	}{
		{"allowed", pay("a", 50), false, Allow, RuleWithin, "amount 50 within per-payment cap 100; hour 0+50 of 250"},
		{"wrong chain", Payment{Key: "b", Chain: 1, Asset: token, Payee: payeeA, Amount: n(1)}, false, Deny, RuleChain, "chain 1 is not in the allowlist"},
		{"wrong asset", Payment{Key: "c", Chain: 3338, Asset: Native, Payee: payeeA, Amount: n(1)}, false, Deny, RuleAsset, "asset native is not in the allowlist for chain 3338"},
		{"payee off allowlist", Payment{Key: "d", Chain: 3338, Asset: token, Payee: payeeB, Amount: n(1)}, false, Deny, RulePayee, "payee " + payeeB + " is not in the allowlist"},
		{"over per-payment cap", pay("e", 101), true, Deny, RulePerPayment, "amount 101 is above the per-payment cap 100"},
		{"needs approval", pay("f", 61), false, NeedsApproval, RuleApproval, "amount 61 is above the approval threshold 60"},
		{"approved", pay("g", 61), true, Allow, RuleWithin, "approved by an operator above the threshold 60"},
		{"zero amount", pay("h", 0), false, Deny, RulePayment, "amount 0 is not a positive integer"},
		{"no key", pay("", 1), false, Deny, RulePayment, "the idempotency key is empty"},
		{"bad payee", Payment{Key: "i", Chain: 3338, Asset: token, Payee: "bob", Amount: n(1)}, false, Deny, RulePayment, `payee: "bob" is not a 0x-prefixed`},
		{"same key same payment", pay("a", 50), false, Allow, RuleReplay, `key "a" is already reserved`},
		{"same key other payment", pay("a", 51), false, Deny, RuleIdempotency, `key "a" was used for a different payment`},
		{"over hour cap", pay("j", 100), true, Deny, RulePerHour, "111 spent in the last hour + 100 = 211"},
	}
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger"), c)
	// 111 spent before "over hour cap": 50 (a) + 61 (g).
	for i, tc := range cases {
		if tc.name == "over hour cap" {
			if d, _ := l.Reserve(ctx, pol, pay("k", 100), true); d.Verdict != Allow {
				t.Fatalf("setup: %v", d)
			}
			cases[i].reason = "211 spent in the last hour + 100 = 311 is above the per-hour cap 250"
			tc.reason = cases[i].reason
		}
		d, err := l.Reserve(ctx, pol, tc.pay, tc.approved)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d.Verdict != tc.verdict || d.Rule != tc.rule || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: got %v, want %v (%s) containing %q", tc.name, d, tc.verdict, tc.rule, tc.reason)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		rules Rules
		want  string
	}{
		{Rules{Payees: []string{"nope"}}, `payees[0]: "nope" is not a 0x-prefixed`},
		{Rules{Limits: []Limit{{Chain: 1, Asset: Native, PerPayment: n(1), PerHour: n(1)}}}, "limits[0].per_day: required"},
		{Rules{Limits: []Limit{{Asset: Native}}}, "limits[0].chain: chain id is required"},
		{Rules{Limits: []Limit{{Chain: 1, Asset: "usdc", PerPayment: n(1), PerHour: n(1), PerDay: n(1)}}}, `limits[0].asset: "usdc" is not`},
		{Rules{Limits: []Limit{{Chain: 1, Asset: Native, PerPayment: n(-1), PerHour: n(1), PerDay: n(1)}}}, "limits[0].per_payment: -1 is negative"},
		{Rules{Limits: []Limit{
			{Chain: 1, Asset: token, PerPayment: n(1), PerHour: n(1), PerDay: n(1)},
			{Chain: 1, Asset: strings.ToUpper(token[2:]), PerPayment: n(1), PerHour: n(1), PerDay: n(1)},
		}}, "limits[1].asset"},
	} {
		_, err := Compile(tc.rules)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%+v) = %v, want %q", tc.rules, err, tc.want)
		}
	}
}

func TestRollingWindows(t *testing.T) {
	ctx := context.Background()
	pol := testPolicy(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "ledger")
	l := openLedger(t, path, c)
	must := func(key string, amt int64, want Verdict) Decision {
		t.Helper()
		d, err := l.Reserve(ctx, pol, pay(key, amt), true)
		if err != nil {
			t.Fatal(err)
		}
		if d.Verdict != want {
			t.Fatalf("%s: %v, want %v", key, d, want)
		}
		return d
	}
	must("1", 100, Allow)
	must("2", 100, Allow)
	must("3", 60, Deny) // hour: 200+60 > 250
	c.add(61 * time.Minute)
	must("4", 100, Allow) // the hour rolled; day 300
	must("5", 100, Allow) // day 400
	d := must("6", 1, Deny)
	if d.Rule != RulePerDay {
		t.Fatalf("want the day cap, got %v", d)
	}
	// A released reservation frees its room at once.
	if err := l.Release(ctx, "5", "transaction never sent"); err != nil {
		t.Fatal(err)
	}
	must("6", 1, Allow)
	if err := l.Commit(ctx, "6", "0xabc"); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx, "5", "0xabc"); err == nil {
		t.Fatal("commit of a released reservation succeeded")
	}
	if err := l.Release(ctx, "6", "x"); err == nil {
		t.Fatal("release of a committed reservation succeeded")
	}
	// The ledger survives a restart with the same totals.
	h, dd := l.Spent(3338, token)
	l.Close()
	l2 := openLedger(t, path, c)
	h2, d2 := l2.Spent(3338, token)
	if h.Cmp(h2) != 0 || dd.Cmp(d2) != 0 || h2.Int64() != 101 || d2.Int64() != 301 {
		t.Fatalf("after reopen hour %v day %v, before %v %v (want 101, 301)", h2, d2, h, dd)
	}
	if e, ok := l2.Get("6"); !ok || e.State != Committed || e.Tx != "0xabc" {
		t.Fatalf("entry 6 after reopen: %+v", e)
	}
	if e, _ := l2.Get("5"); e.State != Released {
		t.Fatalf("entry 5 after reopen: %+v", e)
	}
	// A day later everything has rolled out.
	c.add(24 * time.Hour)
	if h, d := l2.Spent(3338, token); h.Sign() != 0 || d.Sign() != 0 {
		t.Fatalf("a day later hour %v day %v", h, d)
	}
}

// TestConcurrentNoOverspend runs 32 goroutines paying 1 each against a cap of
// 100: exactly 100 are allowed, and the durable file agrees.
func TestConcurrentNoOverspend(t *testing.T) {
	ctx := context.Background()
	pol, err := Compile(Rules{Payees: []string{AnyPayee}, Limits: []Limit{{Chain: 3338, Asset: Native, PerPayment: n(1), PerHour: n(100), PerDay: n(100)}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger")
	l, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				p := Payment{Key: fmt.Sprintf("%d-%d", g, i), Chain: 3338, Asset: Native, Payee: payeeB, Amount: n(1)}
				d, err := l.Reserve(ctx, pol, p, false)
				if err != nil {
					t.Error(err)
					return
				}
				switch d.Verdict {
				case Allow:
					allowed.Add(1)
				default:
					if d.Rule != RulePerHour {
						t.Errorf("unexpected denial %v", d)
					}
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	l.Close()
	if allowed.Load() != 100 || denied.Load() != 220 {
		t.Fatalf("allowed %d denied %d, want 100 and 220", allowed.Load(), denied.Load())
	}
	l2, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if h, _ := l2.Spent(3338, Native); h.Int64() != 100 {
		t.Fatalf("durable hour total %v, want 100", h)
	}
}

func TestDamagedLedgerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	os.WriteFile(path, journal.Encode([]byte(`{"op":"reserve","key":"a","chain":1,"asset":"native","payee":"0x00000000000000000000000000000000000000aa","amount":"ten","at":1}`)), 0o600)
	_, err := Open(Config{Path: path})
	if err == nil || !strings.Contains(err.Error(), path+":1") || !strings.Contains(err.Error(), `amount "ten"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestCompaction(t *testing.T) {
	ctx := context.Background()
	pol, _ := Compile(Rules{Payees: []string{AnyPayee}, Limits: []Limit{{Chain: 1, Asset: Native, PerPayment: n(10), PerHour: n(1e9), PerDay: n(1e9)}}})
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "ledger")
	l, _ := Open(Config{Path: path, Now: c.now, Retain: 24 * time.Hour})
	for i := range 2000 {
		l.Reserve(ctx, pol, Payment{Key: fmt.Sprint(i), Chain: 1, Asset: Native, Payee: payeeA, Amount: n(1)}, false)
	}
	c.add(25 * time.Hour)
	l.Reserve(ctx, pol, Payment{Key: "fresh", Chain: 1, Asset: Native, Payee: payeeA, Amount: n(1)}, false)
	l.Close()
	before, _ := os.Stat(path)
	l2, err := Open(Config{Path: path, Now: c.now, Retain: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	after, _ := os.Stat(path)
	if after.Size() >= before.Size()/100 {
		t.Fatalf("not compacted: %d → %d bytes", before.Size(), after.Size())
	}
	if _, ok := l2.Get("fresh"); !ok {
		t.Fatal("live entry lost in compaction")
	}
	if _, ok := l2.Get("1"); ok {
		t.Fatal("expired key still remembered")
	}
}

func FuzzLedgerRecords(f *testing.F) {
	f.Add([]byte(`{"op":"reserve","key":"a","chain":1,"asset":"native","payee":"0x00000000000000000000000000000000000000aa","amount":"10","at":1}`))
	f.Add([]byte(`{"op":"commit","key":"a","tx":"0x1"}`))
	f.Add([]byte(`{"op":"bogus"}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		if strings.ContainsRune(string(rec), '\n') {
			return
		}
		path := filepath.Join(t.TempDir(), "ledger")
		os.WriteFile(path, journal.Encode(rec), 0o600)
		l, err := Open(Config{Path: path})
		if err != nil {
			return
		}
		defer l.Close()
		pol, _ := Compile(Rules{Payees: []string{AnyPayee}, Limits: []Limit{{Chain: 1, Asset: Native, PerPayment: n(10), PerHour: n(10), PerDay: n(10)}}})
		l.Reserve(context.Background(), pol, Payment{Key: "a", Chain: 1, Asset: Native, Payee: payeeA, Amount: n(1)}, false)
	})
}

func TestOldKeysForgotten(t *testing.T) {
	ctx := context.Background()
	pol := testPolicy(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l, err := Open(Config{Path: filepath.Join(t.TempDir(), "ledger"), Now: c.now, Retain: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Reserve(ctx, pol, pay("old", 10), false)
	c.add(25 * time.Hour)
	l.Reserve(ctx, pol, pay("new", 10), false)
	if _, ok := l.Get("old"); ok {
		t.Fatal("a key older than Retain is still held in memory")
	}
	if _, ok := l.Get("new"); !ok {
		t.Fatal("the new key is missing")
	}
}

// TestCommitAmount: an upto payment reserves its maximum and commits what
// was settled; only that counts from then on, also after a restart, and a
// settlement above the reservation is refused.
func TestCommitAmount(t *testing.T) {
	ctx := context.Background()
	pol := testPolicy(t)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "ledger")
	l := openLedger(t, path, c)
	for _, k := range []string{"a", "b"} {
		if d, err := l.Reserve(ctx, pol, pay(k, 100), true); err != nil || d.Verdict != Allow {
			t.Fatalf("reserve %s: %v %v", k, d, err)
		}
	}
	if err := l.CommitAmount(ctx, "a", "0xaa", n(30)); err != nil {
		t.Fatal(err)
	}
	if err := l.CommitAmount(ctx, "b", "0xbb", n(101)); err == nil || !strings.Contains(err.Error(), "more than the 100 reserved") {
		t.Fatalf("commit above the reservation: %v", err)
	}
	if h, d := l.Spent(3338, token); h.Int64() != 130 || d.Int64() != 130 {
		t.Fatalf("spent %v/%v, want 130 (30 settled + 100 still reserved)", h, d)
	}
	l.Close()
	l = openLedger(t, path, c)
	if h, _ := l.Spent(3338, token); h.Int64() != 130 {
		t.Fatalf("after a restart spent %v, want 130", h)
	}
	if e, ok := l.Get("a"); !ok || e.Payment.Amount.Int64() != 30 || e.Tx != "0xaa" {
		t.Fatalf("entry a: %+v", e)
	}
	c.add(61 * time.Minute)
	if h, d := l.Spent(3338, token); h.Sign() != 0 || d.Int64() != 130 {
		t.Fatalf("after the hour: %v/%v", h, d)
	}
}
