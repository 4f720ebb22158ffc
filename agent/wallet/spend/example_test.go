package spend_test

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"

	"github.com/depai/depai/agent/wallet/spend"
)

// The core's policy engine compiles the configured rules once, opens the
// ledger in the data directory, and reserves every payment before it is made.
func Example() {
	dir, _ := os.MkdirTemp("", "spend")
	defer os.RemoveAll(dir)
	const usdc = "0x0000000000000000000000000000000000000c0c"
	pol, err := spend.Compile(spend.Rules{
		Payees: []string{"0x00000000000000000000000000000000000000aa"},
		Limits: []spend.Limit{{Chain: 3338, Asset: usdc, PerPayment: big.NewInt(100), PerHour: big.NewInt(140), PerDay: big.NewInt(1000), ApproveAbove: big.NewInt(50)}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ledger, err := spend.Open(spend.Config{Path: filepath.Join(dir, "spend.ledger")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ledger.Close()
	ctx := context.Background()
	pay := func(key string, amount int64, approved bool) {
		d, err := ledger.Reserve(ctx, pol, spend.Payment{Key: key, Chain: 3338, Asset: usdc,
			Payee: "0x00000000000000000000000000000000000000aa", Amount: big.NewInt(amount)}, approved)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(key, d.Verdict, d.Rule)
	}
	pay("feed-1", 40, false)
	pay("feed-2", 70, false) // above the approval threshold: parks for /approve
	pay("feed-2", 70, true)  // approved by an operator
	pay("feed-3", 40, false) // 40+70+40 would exceed the hour's 140
	pay("feed-1", 40, false) // a retry is not counted twice
	ledger.Commit(ctx, "feed-1", "0xabc")
	// Output:
	// feed-1 allow within_limits
	// feed-2 needs_approval approval_threshold
	// feed-2 allow within_limits
	// feed-3 deny per_hour_cap
	// feed-1 allow already_reserved
}
