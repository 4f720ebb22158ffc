package x402

import (
	"io"
	"math/big"
	"net/http"
	"runtime"
	"testing"
)

// BenchmarkX402RoundTrip is one paid request end to end: 402, policy
// reservation (fsync), EIP-712 signature, paid retry, seller's replay claim
// (fsync), /verify and /settle over HTTP against the local facilitator, which
// sends transferWithAuthorization to anvil (automine) and waits for the
// receipt, then the resource.
func BenchmarkX402RoundTrip(b *testing.B) {
	benchX402(b, 1)
}

// BenchmarkX402Parallel32 is the same with 32 concurrent buyers sharing one
// budget; it fails if the seller received more than the ledger committed.
func BenchmarkX402Parallel32(b *testing.B) {
	benchX402(b, 32)
}

func benchX402(b *testing.B, conc int) {
	m := newMarket(b)
	m.price.Amount = big.NewInt(1)
	srv, _ := m.sell(b, &HTTPFacilitator{URL: m.facURL}, nil)
	bud := newBudget(b, m, 1<<40)
	hc := m.client(b, bud, &http.Transport{MaxIdleConnsPerHost: 64})
	url := srv.URL + "/feed"
	get := func() {
		resp, err := hc.Get(url)
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Errorf("status %d", resp.StatusCode)
		}
	}
	b.ResetTimer()
	if conc == 1 {
		for b.Loop() {
			get()
		}
	} else {
		b.SetParallelism((conc + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				get()
			}
		})
	}
	b.StopTimer()
	_, day := bud.ledger.Spent(chain, m.token.Hex())
	if got := m.balance(b, m.seller); big.NewInt(got).Cmp(day) > 0 {
		b.Fatalf("seller received %d, the ledger holds %s", got, day)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}

// BenchmarkUptoRoundTrip is one upto-paid request against the in-test upto
// seller (see upto_test.go): 402, policy reservation of the maximum (fsync),
// Permit2 EIP-712 signature, paid retry, the seller's signature recovery,
// and the ledger's commit of the settled amount (fsync). No chain: upto
// settlement on chain is not available here.
func BenchmarkUptoRoundTrip(b *testing.B) {
	url, buyer := serveUpto(b, &uptoSeller{max: "500", settled: "1"})
	_, approve, _ := uptoBudget(b, 1000)
	hc := uptoClient(b, buyer, approve, &http.Transport{MaxIdleConnsPerHost: 64})
	for b.Loop() {
		resp, err := hc.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
