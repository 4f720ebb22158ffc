package host

import (
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/sdk/wire"
)

// FuzzPayArgs: whatever a plugin sends to pay.execute, the host either
// refuses it as invalid_argument or hands the policy a payment with a
// plugin-scoped key, a 0x payee, a positive amount of at most 256 bits and
// the agent's chain — and the wallet the same transfer.
func FuzzPayArgs(f *testing.F) {
	for _, s := range []string{
		`{"key":"k","to":"0x00000000000000000000000000000000000000b0","amount":"5"}`,
		`{"key":"k","to":"0x00000000000000000000000000000000000000b0","amount":"5","asset":"0x00000000000000000000000000000000000000aa"}`,
		`{"key":"k","to":"0x00000000000000000000000000000000000000b0","amount":"-1"}`,
		`{"key":"k","to":"00000000000000000000000000000000000000b0","amount":"1"}`,
		`{"to":"0x00000000000000000000000000000000000000b0","amount":"1"}`,
		`{"key":"k","to":"0x00000000000000000000000000000000000000b0","amount":"1e18"}`,
		`{"key":"k","to":"0x00000000000000000000000000000000000000b0","amount":"115792089237316195423570985008687907853269984665640564039457584007913129639936"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var a wire.PayArgs
		if json.Unmarshal(payload, &a) != nil {
			return
		}
		p, tr, werr := payment("buyer", 3338, wire.HostPayExecute, a)
		if werr != nil {
			if werr.Code != wire.CodeInvalidArgument {
				t.Fatalf("refusal with code %s: %v", werr.Code, werr)
			}
			return
		}
		amt, ok := new(big.Int).SetString(p.Amount, 10)
		if !ok || amt.Sign() <= 0 || amt.BitLen() > 256 || amt.Cmp(tr.Amount) != 0 {
			t.Fatalf("amount %q / %v", p.Amount, tr.Amount)
		}
		if p.Key != "plugin:buyer:"+a.Key || tr.Key != p.Key || a.Key == "" {
			t.Fatalf("key %q from %q", p.Key, a.Key)
		}
		if !common.IsHexAddress(p.Payee) || common.HexToAddress(p.Payee) != tr.To || p.Chain != 3338 {
			t.Fatalf("payee %q chain %d", p.Payee, p.Chain)
		}
		if p.Asset != "native" && !strings.EqualFold(p.Asset, tr.Asset.Hex()) {
			t.Fatalf("asset %q vs %s", p.Asset, tr.Asset)
		}
	})
}
