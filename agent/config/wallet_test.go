package config

import (
	"strings"
	"testing"
)

const walletYAML = `name: a
wallet:
  chain_id: 3338
  rpc: http://127.0.0.1:8545
  passphrase_env: DEPAI_WALLET_PASSPHRASE
  sell:
    asset: "0x00000000000000000000000000000000000000aa"
    price: 1000
    token_name: USD Coin
    token_version: "2"
  earnings:
    asset: native
    threshold: "1_000_000_000_000_000_000"
    owners: [{name: alice, payee: "0x00000000000000000000000000000000000000a1", weight: 3}]
    treasury: {name: dao, payee: "0x00000000000000000000000000000000000000d0", weight: 1}
safety:
  spend:
    payees: ["0x00000000000000000000000000000000000000b0"]
    limits:
      - {chain: 3338, asset: native, per_payment: 100, per_hour: 1000, per_day: "100000000000000000000", approve_above: 50}
`

func TestWalletAndSpend(t *testing.T) {
	f, err := Parse("/cfg/fleet.yaml", []byte(walletYAML))
	if err != nil {
		t.Fatal(err)
	}
	a := f.Agents[0]
	w := a.Wallet
	if w == nil || w.ChainID != 3338 || w.RPC != "http://127.0.0.1:8545" || w.PassphraseEnv != "DEPAI_WALLET_PASSPHRASE" || w.Confirmations != 1 || w.KeyFile != "" {
		t.Fatalf("wallet = %+v", w)
	}
	if w.Sell.Price.String() != "1000" || w.Earnings.Threshold.String() != "1000000000000000000" || w.Earnings.Owners[0].Weight != 3 {
		t.Fatalf("sell/earnings = %+v %+v", w.Sell, w.Earnings)
	}
	l := a.Safety.Spend.Limits[0]
	if l.PerPayment.String() != "100" || l.PerDay.String() != "100000000000000000000" || l.ApproveAbove == nil || l.ApproveAbove.String() != "50" {
		t.Fatalf("limit = %+v", l)
	}
}

func TestWalletAndSpendErrors(t *testing.T) {
	base := "name: a\nwallet: {chain_id: 3338, rpc: 'http://127.0.0.1:8545'}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"payee not an address", base + "safety:\n  spend:\n    payees: [bob]\n    limits: [{chain: 1, asset: native, per_payment: 1, per_hour: 1, per_day: 1}]\n",
			`fleet.yaml:5: safety.spend.payees[0]: invalid payee "bob" (expected a 0x-prefixed 20-byte hex address, or "*" for anyone)`},
		{"decimal amount", base + "safety:\n  spend:\n    payees: ['*']\n    limits: [{chain: 1, asset: native, per_payment: 0.5, per_hour: 1, per_day: 1}]\n",
			`fleet.yaml:6: safety.spend.limits[0].per_payment: expected an integer amount in the asset's smallest unit, got number "0.5"`},
		{"negative amount", base + "safety:\n  spend:\n    payees: ['*']\n    limits: [{chain: 1, asset: native, per_payment: -1, per_hour: 1, per_day: 1}]\n",
			`fleet.yaml:6: safety.spend.limits[0].per_payment: invalid amount "-1" (expected a non-negative integer in the asset's smallest unit, such as 1000000 for 1 USDC)`},
		{"missing cap", base + "safety:\n  spend:\n    payees: ['*']\n    limits: [{chain: 1, asset: native, per_payment: 1, per_hour: 1}]\n",
			`fleet.yaml:6: safety.spend.limits[0]: missing required key "per_day"`},
		{"bad asset", base + "safety:\n  spend:\n    payees: ['*']\n    limits: [{chain: 1, asset: usdc, per_payment: 1, per_hour: 1, per_day: 1}]\n",
			`fleet.yaml:6: safety.spend.limits[0].asset: invalid asset "usdc" (expected "native" for the chain's coin, or a token contract's 0x-prefixed 20-byte hex address)`},
		{"per payment over the hour", base + "safety:\n  spend:\n    payees: ['*']\n    limits: [{chain: 1, asset: native, per_payment: 5, per_hour: 1, per_day: 9}]\n",
			`fleet.yaml:6: safety.spend.limits[0].per_payment: per_payment 5 is above per_hour 1: no payment that large could ever be made`},
		{"threshold never reached", base + "safety:\n  spend:\n    payees: ['*']\n    limits: [{chain: 1, asset: native, per_payment: 5, per_hour: 5, per_day: 9, approve_above: 5}]\n",
			`fleet.yaml:6: safety.spend.limits[0].approve_above: approve_above 5 is not below per_payment 5, so no payment would ever wait for approval`},
		{"two limits for one asset", base + "safety:\n  spend:\n    payees: ['*']\n    limits:\n      - {chain: 1, asset: native, per_payment: 1, per_hour: 1, per_day: 1}\n      - {chain: 1, asset: native, per_payment: 1, per_hour: 1, per_day: 1}\n",
			`fleet.yaml:8: safety.spend.limits[1].asset: a second limit for asset native on chain 1 (first at line 7); put one asset's caps in one limit`},
		{"limits without payees", base + "safety:\n  spend:\n    limits: [{chain: 1, asset: native, per_payment: 1, per_hour: 1, per_day: 1}]\n",
			`fleet.yaml:5: safety.spend.limits: limits are set but payees is empty, so every payment would be refused; list the payees (0x…) or "*"`},
		{"wallet without rpc", "name: a\nwallet: {chain_id: 3338}\n",
			`fleet.yaml:2: wallet: missing required key "rpc"`},
		{"wallet bad rpc", "name: a\nwallet: {chain_id: 3338, rpc: '127.0.0.1:8545'}\n",
			`fleet.yaml:2: wallet.rpc: invalid RPC endpoint "127.0.0.1:8545" (expected an http(s):// or ws(s):// URL, such as "http://127.0.0.1:8545")`},
		{"wallet zero chain", "name: a\nwallet: {chain_id: 0, rpc: 'http://h'}\n",
			`fleet.yaml:2: wallet.chain_id: must be positive, got 0`},
		{"passphrase in a bad env name", "name: a\nwallet: {chain_id: 1, rpc: 'http://h', passphrase_env: 'my pass'}\n",
			`fleet.yaml:2: wallet.passphrase_env: invalid environment variable name "my pass"`},
		{"sell for the native coin", "name: a\nwallet:\n  chain_id: 1\n  rpc: http://h\n  sell: {asset: native, price: 1, token_name: x, token_version: '1'}\n",
			`fleet.yaml:5: wallet.sell.asset: x402 sells for an EIP-3009 token, not the native coin; give the token's 0x… address`},
		{"earnings payee twice", "name: a\nwallet:\n  chain_id: 1\n  rpc: http://h\n  earnings:\n    asset: native\n    threshold: 1\n    owners: [{name: a, payee: '0x00000000000000000000000000000000000000a1', weight: 1}]\n    treasury: {name: t, payee: '0x00000000000000000000000000000000000000A1', weight: 1}\n",
			`fleet.yaml:9: wallet.earnings.treasury.payee: payee 0x00000000000000000000000000000000000000A1 already has a share (at line 8)`},
		{"earnings never paid out", "name: a\nwallet:\n  chain_id: 1\n  rpc: http://h\n  earnings:\n    asset: native\n    treasury: {name: t, payee: '0x00000000000000000000000000000000000000a1', weight: 1}\n",
			`fleet.yaml:6: wallet.earnings: neither threshold nor every is set, so nothing would ever be paid out; set threshold: AMOUNT, every: DURATION (such as 24h), or both`},
		{"earnings every too short", "name: a\nwallet:\n  chain_id: 1\n  rpc: http://h\n  earnings:\n    asset: native\n    every: 10ms\n    treasury: {name: t, payee: '0x00000000000000000000000000000000000000a1', weight: 1}\n",
			`fleet.yaml:7: wallet.earnings.every: every 10ms is shorter than a second; payouts are transactions (such as 1h or 24h)`},
		{"ioid bad registry", "name: a\nwallet:\n  chain_id: 4690\n  rpc: http://h\n  identities:\n    ioid: {registry: nope, device_nft: '0x00000000000000000000000000000000000000a1', token_id: 1, uri: 'https://x'}\n",
			`fleet.yaml:6: wallet.identities.ioid.registry: invalid contract address "nope" (expected a 0x-prefixed 20-byte hex address)`},
		{"ioid missing token", "name: a\nwallet:\n  chain_id: 4690\n  rpc: http://h\n  identities:\n    ioid: {registry: '0x00000000000000000000000000000000000000a1', device_nft: '0x00000000000000000000000000000000000000a1', uri: 'https://x'}\n",
			`fleet.yaml:6: wallet.identities.ioid: missing required key "token_id"`},
		{"register nothing", "name: a\nwallet:\n  chain_id: 3338\n  rpc: http://h\n  identities: {register: true}\n",
			`fleet.yaml:5: wallet.identities.register: register is true but no identity is configured; add peaq: {} and/or ioid: {registry, device_nft, token_id, uri}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("fleet.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Split(err.Error(), "\n")[0]; got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
