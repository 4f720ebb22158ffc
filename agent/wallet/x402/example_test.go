package x402_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/agent/wallet/x402"
)

// A seller prices a sensor feed; a request without payment is answered 402
// with the requirements in PAYMENT-REQUIRED.
func ExamplePaywall() {
	dir, _ := os.MkdirTemp("", "x402")
	defer os.RemoveAll(dir)
	guard, err := x402.OpenReplayGuard(filepath.Join(dir, "replay"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer guard.Close()
	paywall, err := x402.Paywall(x402.PaywallConfig{
		Accepts: []x402.Price{{ChainID: 3338, Asset: common.HexToAddress("0x0000000000000000000000000000000000000c0c"),
			Amount: big.NewInt(1000), PayTo: common.HexToAddress("0x00000000000000000000000000000000000000aa"), TokenName: "USD Coin", TokenVersion: "2"}},
		Description: "temperature, 1 reading",
		Facilitator: &x402.HTTPFacilitator{URL: "http://127.0.0.1:1"}, // not reached without a payment
		Replay:      guard,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	feed := paywall(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"celsius":21.5}`) }))
	rec := httptest.NewRecorder()
	feed.ServeHTTP(rec, httptest.NewRequest("GET", "http://robot.local/feed", nil))
	raw, _ := base64.StdEncoding.DecodeString(rec.Header().Get(x402.HeaderRequired))
	var pr x402.PaymentRequired
	json.Unmarshal(raw, &pr)
	a := pr.Accepts[0]
	fmt.Println(rec.Code, pr.X402Version, a.Scheme, a.Network, a.Amount, pr.Resource.URL)
	// Output:
	// 402 2 exact eip155:3338 1000 http://robot.local/feed
}
