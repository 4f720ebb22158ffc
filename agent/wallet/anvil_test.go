package wallet

import (
	"context"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/depai/depai/agent/internal/testchain"
)

// TestFeesByChain pays on anvil with and without EIP-1559 (a Berlin chain
// has no base fee, so the wallet must fall back to a legacy gas price).
func TestFeesByChain(t *testing.T) {
	for _, tc := range []struct {
		hardfork string
		txType   uint8
	}{{"berlin", types.LegacyTxType}, {"prague", types.DynamicFeeTxType}} {
		t.Run(tc.hardfork, func(t *testing.T) {
			node := testchain.StartAnvil(t, 4690, "--hardfork", tc.hardfork)
			key := importKey(t, testchain.NewKey(t))
			node.Fund(t, testchain.Ether(1), key.Address())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := Open(ctx, Config{ChainID: 4690, RPC: node.URL, Signer: key, Journal: filepath.Join(t.TempDir(), "j"), PollInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := c.Pay(ctx, Transfer{Key: "k", To: common.Address{9}, Amount: big.NewInt(5)})
			if err != nil {
				t.Fatal(err)
			}
			tx, _, err := node.Client.TransactionByHash(ctx, r.TxHash)
			if err != nil {
				t.Fatal(err)
			}
			if tx.Type() != tc.txType {
				t.Fatalf("transaction type %d, want %d", tx.Type(), tc.txType)
			}
		})
	}
}
