package config

import (
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Wallet is an agent's EVM wallet: a secp256k1 key in its data directory
// and the chain it pays on. The passphrase that seals the key is read from
// the environment variable PassphraseEnv names — by the CLI, never by the
// agent — and reaches the agent through its secrets.
type Wallet struct {
	// ChainID is the chain the wallet pays on (IoTeX 4689/4690, peaq 3338,
	// any EVM chain). A node reporting another chain id is refused.
	ChainID int `yaml:"chain_id" check:"required,positive"`
	// RPC is the node's JSON-RPC endpoint: http(s)://, ws(s)://.
	RPC string `yaml:"rpc" check:"required"`
	// KeyFile is the v3 keystore file (0600), relative to the config file.
	// Empty: DATA/identity/NAME.evm.json, beside the agent's identity key;
	// created on first start.
	KeyFile       string `yaml:"key_file"`
	PassphraseEnv string `yaml:"passphrase_env"` // the environment variable holding the key's passphrase; empty: unsealed
	// Confirmations is how many blocks a payment waits for; default 1.
	Confirmations int `yaml:"confirmations" check:"nonneg"`
	// Sell offers the agent's sensor readings for x402 payments on the
	// operator API. Nil: nothing is sold.
	Sell *Sell `yaml:"sell"`
	// Earnings splits what the agent earns among its owners. Nil: earnings
	// are not split (and /earnings says so).
	Earnings *Earnings `yaml:"earnings"`
	// Identities names the agent's identities on chain (did:peaq, did:io)
	// and whether to register them at start. Nil: none.
	Identities *Identities `yaml:"identities"`
}

// Identities are an agent's on-chain identities, keyed by its wallet
// address. Registering one is a transaction whose gas is a payment to the
// contract under safety.spend: the contract must be among the payees and
// the chain's native coin under a limit.
type Identities struct {
	// Register registers (or updates) each configured identity at start,
	// and whenever the wallet becomes available after that.
	Register bool    `yaml:"register"`
	Peaq     *PeaqID `yaml:"peaq"`
	IoID     *IoID   `yaml:"ioid"`
}

// PeaqID is the agent's did:peaq: its DID document as an attribute on peaq's
// DID precompile.
type PeaqID struct {
	// Attribute is the attribute's name; default "depai".
	Attribute string `yaml:"attribute"`
	// Precompile is the DID precompile's address; default
	// 0x0000000000000000000000000000000000000800.
	Precompile string `yaml:"precompile"`
}

// IoID is the agent's did:io: the agent's key registered as a device in
// IoTeX's ioIDRegistry with its DID document's hash and URI.
type IoID struct {
	Registry  string `yaml:"registry" check:"required"`   // the ioIDRegistry contract, 0x…
	DeviceNFT string `yaml:"device_nft" check:"required"` // the project's device NFT contract, 0x…
	TokenID   Amount `yaml:"token_id" check:"required"`   // the device NFT the agent's address owns
	URI       string `yaml:"uri" check:"required"`        // where the DID document is served
}

// Sell is an x402 price on the agent's readings, served on the operator API
// at /v1/agents/NAME/x402/readings.
type Sell struct {
	Asset string `yaml:"asset" check:"required"` // an EIP-3009 token contract, 0x…
	Price Amount `yaml:"price" check:"required"` // per request, in the token's smallest unit
	// TokenName and TokenVersion are the token's EIP-712 domain, which the
	// buyer signs over.
	TokenName    string `yaml:"token_name" check:"required"`
	TokenVersion string `yaml:"token_version" check:"required"`
	// Facilitator verifies and settles payments (/verify, /settle); empty:
	// the agent settles them itself with its wallet.
	Facilitator string `yaml:"facilitator"`
	// Sensors limits what is sold to these sensors' readings; empty: all.
	Sensors []string `yaml:"sensors"`
}

// Earnings shares a co-owned machine's income. Every unit earned goes to an
// owner or the treasury, which also takes the rounding remainder.
type Earnings struct {
	Asset string `yaml:"asset" check:"required"` // "native" or a token contract, 0x…
	// Threshold pays out when this much is held; Every pays out whatever is
	// held on a schedule. At least one is required; both may be set.
	Threshold Amount   `yaml:"threshold"`
	Every     Duration `yaml:"every" check:"nonneg"`
	Owners    []Owner  `yaml:"owners"`
	Treasury  Owner    `yaml:"treasury" check:"required"`
}

// Owner is one payee of the earnings split.
type Owner struct {
	Name   string `yaml:"name" check:"required"`
	Payee  string `yaml:"payee" check:"required"` // 0x… address
	Weight int    `yaml:"weight" check:"required,positive"`
}

// Spend is the spend policy. Every payment (a plugin's pay.execute, an x402
// payment inside http.fetch, an earnings payout) passes it. A chain or asset
// that no limit names is refused: the limits are the chain and asset
// allowlists.
type Spend struct {
	// Payees may be paid: 0x… addresses, or "*" for anyone. Empty: no one.
	Payees []string     `yaml:"payees"`
	Limits []SpendLimit `yaml:"limits"`
}

// SpendLimit caps one asset on one chain. Amounts are integers in the
// asset's smallest unit (wei, or the token's base unit).
type SpendLimit struct {
	Chain      int    `yaml:"chain" check:"required,positive"`
	Asset      string `yaml:"asset" check:"required"` // "native" or a token contract, 0x…
	PerPayment Amount `yaml:"per_payment" check:"required"`
	PerHour    Amount `yaml:"per_hour" check:"required"` // rolling
	PerDay     Amount `yaml:"per_day" check:"required"`  // rolling
	// ApproveAbove parks a larger payment for /approve or /deny. Nil: none
	// needs approval.
	ApproveAbove *Amount `yaml:"approve_above"`
}

// NativeAsset names a chain's native coin in Spend and Earnings.
const NativeAsset = "native"

// Amount is a non-negative integer amount of an asset's smallest unit,
// written as a YAML integer or a string of digits ("1000000000000000000").
type Amount struct{ n *big.Int }

// Int returns the amount (a copy; 0 when unset).
func (a Amount) Int() *big.Int {
	if a.n == nil {
		return new(big.Int)
	}
	return new(big.Int).Set(a.n)
}

// IsSet reports whether the amount was written.
func (a Amount) IsSet() bool { return a.n != nil }

func (a Amount) String() string { return a.Int().String() }

// NewAmount returns n as an Amount.
func NewAmount(n *big.Int) Amount { return Amount{n: new(big.Int).Set(n)} }

// UnmarshalYAML decodes an integer amount. Decimals are refused: the unit
// would be a guess (wei or ether?).
func (a *Amount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!str") {
		return fmt.Errorf("expected an integer amount in the asset's smallest unit, got %s", describe(n))
	}
	v, ok := new(big.Int).SetString(strings.ReplaceAll(n.Value, "_", ""), 10)
	if !ok || v.Sign() < 0 {
		return fmt.Errorf("invalid amount %q (expected a non-negative integer in the asset's smallest unit, such as 1000000 for 1 USDC)", n.Value)
	}
	a.n = v
	return nil
}

// validAddress reports whether s is an EVM address: 0x and 40 hex digits
// (a hand-written check: the regexp's compile cost every start).
func validAddress(s string) bool {
	if len(s) != 42 || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// money checks the wallet and the spend policy of agent a at path p.
func (d *decoder) money(p string, a *Agent) {
	sp := join(p, "safety.spend")
	s := &a.Safety.Spend
	for i, pe := range s.Payees {
		if pe != "*" && !validAddress(pe) {
			d.errAt(fmt.Sprintf("%s.payees[%d]", sp, i), "invalid payee %q (expected a 0x-prefixed 20-byte hex address, or \"*\" for anyone)", pe)
		}
	}
	type ca struct {
		chain int
		asset string
	}
	seen := map[ca]string{}
	for i, l := range s.Limits {
		lp := fmt.Sprintf("%s.limits[%d]", sp, i)
		d.asset(join(lp, "asset"), l.Asset)
		k := ca{l.Chain, strings.ToLower(l.Asset)}
		if first, dup := seen[k]; dup {
			d.errAt(join(lp, "asset"), "a second limit for asset %s on chain %d (first at line %d); put one asset's caps in one limit", l.Asset, l.Chain, d.lines[first])
		} else {
			seen[k] = join(lp, "asset")
		}
		per := l.PerPayment.Int()
		if l.PerHour.IsSet() && per.Cmp(l.PerHour.Int()) > 0 {
			d.errAt(join(lp, "per_payment"), "per_payment %s is above per_hour %s: no payment that large could ever be made", per, l.PerHour)
		}
		if l.PerDay.IsSet() && l.PerHour.Int().Cmp(l.PerDay.Int()) > 0 {
			d.errAt(join(lp, "per_hour"), "per_hour %s is above per_day %s; the day's cap would be reached first", l.PerHour, l.PerDay)
		}
		if l.ApproveAbove != nil && l.ApproveAbove.Int().Cmp(per) >= 0 {
			d.errAt(join(lp, "approve_above"), "approve_above %s is not below per_payment %s, so no payment would ever wait for approval", l.ApproveAbove, per)
		}
	}
	if len(s.Limits) > 0 && len(s.Payees) == 0 {
		d.errAt(join(sp, "limits"), "limits are set but payees is empty, so every payment would be refused; list the payees (0x…) or \"*\"")
	}
	if len(s.Payees) > 0 && len(s.Limits) == 0 {
		d.errAt(join(sp, "payees"), "payees are set but there are no limits, so every payment would be refused; add limits: [{chain, asset, per_payment, per_hour, per_day}]")
	}
	w := a.Wallet
	if w == nil {
		if len(s.Limits) > 0 {
			d.errAt(join(sp, "limits"), "a spend policy needs a wallet to pay from; add wallet: {chain_id, rpc}")
		}
		return
	}
	wp := join(p, "wallet")
	if w.RPC != "" {
		u, err := url.Parse(w.RPC)
		if err != nil || u.Host == "" || !(u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "ws" || u.Scheme == "wss") {
			d.errAt(join(wp, "rpc"), "invalid RPC endpoint %q (expected an http(s):// or ws(s):// URL, such as \"http://127.0.0.1:8545\")", w.RPC)
		}
	}
	if w.PassphraseEnv != "" && !envRE().MatchString(w.PassphraseEnv) {
		d.errAt(join(wp, "passphrase_env"), "invalid environment variable name %q", w.PassphraseEnv)
	}
	w.KeyFile = d.abs(w.KeyFile)
	if w.Confirmations == 0 {
		w.Confirmations = 1
	}
	if sl := w.Sell; sl != nil {
		d.asset(join(wp, "sell.asset"), sl.Asset)
		if sl.Asset == NativeAsset {
			d.errAt(join(wp, "sell.asset"), "x402 sells for an EIP-3009 token, not the native coin; give the token's 0x… address")
		}
		if sl.Price.IsSet() && sl.Price.Int().Sign() == 0 {
			d.errAt(join(wp, "sell.price"), "price must be positive, got 0")
		}
		if sl.Facilitator != "" {
			if u, err := url.Parse(sl.Facilitator); err != nil || u.Host == "" || !(u.Scheme == "http" || u.Scheme == "https") {
				d.errAt(join(wp, "sell.facilitator"), "invalid facilitator %q (expected an http(s):// URL)", sl.Facilitator)
			}
		}
	}
	if w.Identities != nil {
		d.identities(join(wp, "identities"), w.Identities)
	}
	if e := w.Earnings; e != nil {
		ep := join(wp, "earnings")
		d.asset(join(ep, "asset"), e.Asset)
		if e.Threshold.IsSet() && e.Threshold.Int().Sign() == 0 {
			d.errAt(join(ep, "threshold"), "threshold must be positive, got 0")
		}
		if !e.Threshold.IsSet() && e.Every == 0 {
			d.errAt(ep, "neither threshold nor every is set, so nothing would ever be paid out; set threshold: AMOUNT, every: DURATION (such as 24h), or both")
		}
		if e.Every != 0 && e.Every.Std() < time.Second {
			d.errAt(join(ep, "every"), "every %s is shorter than a second; payouts are transactions (such as 1h or 24h)", e.Every)
		}
		payees := map[string]string{}
		check := func(op string, o Owner) {
			if o.Payee == "" {
				return
			}
			if !validAddress(o.Payee) {
				d.errAt(join(op, "payee"), "invalid payee %q (expected a 0x-prefixed 20-byte hex address)", o.Payee)
				return
			}
			if first, dup := payees[strings.ToLower(o.Payee)]; dup {
				d.errAt(join(op, "payee"), "payee %s already has a share (at line %d)", o.Payee, d.lines[first])
			}
			payees[strings.ToLower(o.Payee)] = join(op, "payee")
		}
		for i, o := range e.Owners {
			check(fmt.Sprintf("%s.owners[%d]", ep, i), o)
		}
		check(join(ep, "treasury"), e.Treasury)
	}
}

// identities checks wallet.identities at key p.
func (d *decoder) identities(p string, ids *Identities) {
	if ids.Peaq != nil && ids.Peaq.Precompile != "" && !validAddress(ids.Peaq.Precompile) {
		d.errAt(join(p, "peaq.precompile"), "invalid precompile address %q (expected a 0x-prefixed 20-byte hex address)", ids.Peaq.Precompile)
	}
	if ids.Peaq != nil && len(ids.Peaq.Attribute) > 64 {
		d.errAt(join(p, "peaq.attribute"), "attribute name is %d bytes; the DID precompile takes at most 64", len(ids.Peaq.Attribute))
	}
	if io := ids.IoID; io != nil {
		for _, f := range []struct{ key, v string }{{"ioid.registry", io.Registry}, {"ioid.device_nft", io.DeviceNFT}} {
			if f.v != "" && !validAddress(f.v) {
				d.errAt(join(p, f.key), "invalid contract address %q (expected a 0x-prefixed 20-byte hex address)", f.v)
			}
		}
	}
	if ids.Register && ids.Peaq == nil && ids.IoID == nil {
		d.errAt(join(p, "register"), "register is true but no identity is configured; add peaq: {} and/or ioid: {registry, device_nft, token_id, uri}")
	}
}

// asset checks an asset name: "native" or a 0x… token contract.
func (d *decoder) asset(key, s string) {
	if s != "" && s != NativeAsset && !validAddress(s) {
		d.errAt(key, "invalid asset %q (expected %q for the chain's coin, or a token contract's 0x-prefixed 20-byte hex address)", s, NativeAsset)
	}
}
