package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/wallet/spend"
)

func benchSpendEngine(b *testing.B) *policy.Engine {
	dir := b.TempDir()
	l, err := spend.Open(spend.Config{Path: filepath.Join(dir, "spend.ledger")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	huge := config.NewAmount(new(big.Int).Lsh(big.NewInt(1), 200))
	rules := policy.Rules{Ledger: l, Spend: config.Spend{Payees: []string{payee},
		Limits: []config.SpendLimit{{Chain: 3338, Asset: "native", PerPayment: amt(10), PerHour: huge, PerDay: huge}}}}
	state, err := policy.OpenState(dir)
	if err != nil {
		b.Fatal(err)
	}
	e, err := policy.New(context.Background(), policy.Config{Log: openLog(b, openStore(b)), State: state, Agents: map[string]policy.Rules{"rover-1": rules}})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkPaymentDecide is the spend policy's dry run for one payment
// (what pay.quote shows): the rules against the rolling windows.
func BenchmarkPaymentDecide(b *testing.B) {
	e := benchSpendEngine(b)
	a := payAction("k", 10, payee)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(ctx, a); d.Verdict != policy.Allow {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkPaymentAuthorize is the whole decision for one payment, as every
// payment pays it before money moves: the dry run, the durable reservation
// (fsync, compare-and-swap), the audit record of the decision, and the
// commit and audit of its receipt. Parallel32 runs 32 concurrent payers.
func BenchmarkPaymentAuthorize(b *testing.B) {
	for _, par := range []int{1, 32} {
		b.Run(fmt.Sprintf("Parallel%d", par), func(b *testing.B) {
			e := benchSpendEngine(b)
			ctx := context.Background()
			var n atomicCounter
			b.SetParallelism(par)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.next()
					done, err := e.Authorize(ctx, payAction(fmt.Sprintf("k%d", i), 10, payee))
					if err != nil {
						b.Error(err)
						return
					}
					done(json.RawMessage(`{"tx":"0x01"}`), nil)
				}
			})
		})
	}
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) next() int64 { return c.n.Add(1) }
