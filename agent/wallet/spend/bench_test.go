package spend

import (
	"context"
	"fmt"
	"math/big"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
)

func benchPolicy(b *testing.B, hourCap int64) *Policy {
	pol, err := Compile(Rules{Payees: []string{payeeA}, Limits: []Limit{{Chain: 3338, Asset: token, PerPayment: n(10), PerHour: n(hourCap), PerDay: n(hourCap)}}})
	if err != nil {
		b.Fatal(err)
	}
	return pol
}

// BenchmarkDecide is the decision alone (rules against the window totals).
func BenchmarkDecide(b *testing.B) {
	pol := benchPolicy(b, 1<<40)
	p, _ := check(pay("k", 5))
	hour, day := big.NewInt(1000), big.NewInt(5000)
	b.ReportAllocs()
	for b.Loop() {
		if d := pol.decide(p, hour, day, false); d.Verdict != Allow {
			b.Fatal(d)
		}
	}
}

// BenchmarkReserve is one durable spend decision: decide, append, fsync.
func BenchmarkReserve(b *testing.B) {
	pol := benchPolicy(b, 1<<40)
	l, err := Open(Config{Path: filepath.Join(b.TempDir(), "ledger")})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if d, err := l.Reserve(ctx, pol, pay(fmt.Sprint(i), 5), false); err != nil || d.Verdict != Allow {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkReserve32 is durable spend decisions from 32 concurrent callers
// (group-committed fsync); it fails if more than the cap was allowed.
func BenchmarkReserve32(b *testing.B) {
	hourCap := int64(1 << 40)
	pol := benchPolicy(b, hourCap)
	l, err := Open(Config{Path: filepath.Join(b.TempDir(), "ledger")})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	var seq, allowed atomic.Int64
	b.SetParallelism((32 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, err := l.Reserve(ctx, pol, pay(fmt.Sprint(seq.Add(1)), 5), false)
			if err != nil {
				b.Error(err)
				return
			}
			if d.Verdict == Allow {
				allowed.Add(1)
			}
		}
	})
	if h, _ := l.Spent(3338, token); h.Int64() != 5*allowed.Load() || h.Int64() > hourCap {
		b.Fatalf("ledger holds %v for %d allowed payments of 5", h, allowed.Load())
	}
}
