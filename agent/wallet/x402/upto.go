package x402

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/depai/depai/agent/wallet"
)

// SchemeUpto is x402's "upto" scheme: the buyer authorizes up to the
// requirement's amount and the seller settles what the request actually
// cost. On EVM chains it is a Permit2 PermitWitnessTransferFrom whose
// spender is x402's upto proxy and whose witness names the payee and the
// facilitator allowed to settle (as @x402/evm 2.27.0's upto scheme signs
// it).
const SchemeUpto = "upto"

// Permit2 and the x402 upto proxy have the same address on every chain
// (deterministic deployments), as @x402/evm names them.
var (
	Permit2Address   = common.HexToAddress("0x000000000022D473030F116dDEE9F6B43aC78BA3")
	UptoProxyAddress = common.HexToAddress("0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002")
)

// Permit2Authorization is the upto payload's authorization as it travels:
// numbers are decimal strings.
type Permit2Authorization struct {
	From      string           `json:"from"`
	Permitted Permit2Permitted `json:"permitted"`
	Spender   string           `json:"spender"`
	Nonce     string           `json:"nonce"`
	Deadline  string           `json:"deadline"`
	Witness   Permit2Witness   `json:"witness"`
}

// Permit2Permitted is the token and the most that may be taken.
type Permit2Permitted struct {
	Token  string `json:"token"`
	Amount string `json:"amount"`
}

// Permit2Witness binds the permit to the payee and the facilitator.
type Permit2Witness struct {
	To          string `json:"to"`
	Facilitator string `json:"facilitator"`
	ValidAfter  string `json:"validAfter"`
}

// UptoAuth is a parsed Permit2Authorization.
type UptoAuth struct {
	From, Token, Spender, To, Facilitator common.Address
	Max, Nonce, Deadline, ValidAfter      *big.Int
}

// Wire returns the authorization as it travels.
func (a UptoAuth) Wire() Permit2Authorization {
	return Permit2Authorization{From: a.From.Hex(), Permitted: Permit2Permitted{Token: a.Token.Hex(), Amount: a.Max.String()},
		Spender: a.Spender.Hex(), Nonce: a.Nonce.String(), Deadline: a.Deadline.String(),
		Witness: Permit2Witness{To: a.To.Hex(), Facilitator: a.Facilitator.Hex(), ValidAfter: a.ValidAfter.String()}}
}

// ParseUptoAuth validates a wire Permit2 authorization; errors name the
// field.
func ParseUptoAuth(w Permit2Authorization) (UptoAuth, error) {
	var a UptoAuth
	for _, f := range []struct {
		name, v string
		dst     *common.Address
	}{{"from", w.From, &a.From}, {"permitted.token", w.Permitted.Token, &a.Token}, {"spender", w.Spender, &a.Spender},
		{"witness.to", w.Witness.To, &a.To}, {"witness.facilitator", w.Witness.Facilitator, &a.Facilitator}} {
		if !isAddress(f.v) {
			return a, fmt.Errorf("x402: permit2Authorization.%s %q is not an address", f.name, f.v)
		}
		*f.dst = common.HexToAddress(f.v)
	}
	err := parseUints("permit2Authorization", []uintField{{"permitted.amount", w.Permitted.Amount, &a.Max}, {"nonce", w.Nonce, &a.Nonce},
		{"deadline", w.Deadline, &a.Deadline}, {"witness.validAfter", w.Witness.ValidAfter, &a.ValidAfter}})
	return a, err
}

// UptoTypedData is the EIP-712 PermitWitnessTransferFrom message of an
// upto authorization, with Permit2's domain (name "Permit2", no version).
func UptoTypedData(chainID uint64, a UptoAuth) apitypes.TypedData {
	return apitypes.TypedData{
		Types: apitypes.Types{
			"EIP712Domain": {{Name: "name", Type: "string"}, {Name: "chainId", Type: "uint256"}, {Name: "verifyingContract", Type: "address"}},
			"PermitWitnessTransferFrom": {
				{Name: "permitted", Type: "TokenPermissions"}, {Name: "spender", Type: "address"}, {Name: "nonce", Type: "uint256"},
				{Name: "deadline", Type: "uint256"}, {Name: "witness", Type: "Witness"},
			},
			"TokenPermissions": {{Name: "token", Type: "address"}, {Name: "amount", Type: "uint256"}},
			"Witness":          {{Name: "to", Type: "address"}, {Name: "facilitator", Type: "address"}, {Name: "validAfter", Type: "uint256"}},
		},
		PrimaryType: "PermitWitnessTransferFrom",
		Domain:      apitypes.TypedDataDomain{Name: "Permit2", ChainId: math.NewHexOrDecimal256(int64(chainID)), VerifyingContract: Permit2Address.Hex()},
		Message: apitypes.TypedDataMessage{
			"permitted": map[string]any{"token": a.Token.Hex(), "amount": a.Max.String()},
			"spender":   a.Spender.Hex(), "nonce": a.Nonce.String(), "deadline": a.Deadline.String(),
			"witness": map[string]any{"to": a.To.Hex(), "facilitator": a.Facilitator.Hex(), "validAfter": a.ValidAfter.String()},
		},
	}
}

// NewUptoAuth builds the authorization for an upto offer: up to o.Amount to
// o.PayTo, settled by o.Facilitator, valid until now+validity (at most the
// offer's maxTimeoutSeconds), with a random Permit2 nonce.
func NewUptoAuth(o Offer, from common.Address, now time.Time, validity time.Duration) (UptoAuth, error) {
	if max := time.Duration(o.MaxTimeout) * time.Second; validity <= 0 || validity > max {
		validity = max
	}
	var nb [32]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return UptoAuth{}, fmt.Errorf("x402: nonce: %w", err)
	}
	return UptoAuth{From: from, Token: o.Asset, Spender: UptoProxyAddress, To: o.PayTo, Facilitator: o.Facilitator,
		Max: new(big.Int).Set(o.Amount), Nonce: new(big.Int).SetBytes(nb[:]), Deadline: big.NewInt(now.Add(validity).Unix()), ValidAfter: new(big.Int)}, nil
}

// SignUpto signs an upto authorization.
func SignUpto(signer wallet.Signer, chainID uint64, a UptoAuth) (ExactPayload, error) {
	sig, err := signer.SignTypedData(UptoTypedData(chainID, a))
	if err != nil {
		return ExactPayload{}, err
	}
	w := a.Wire()
	return ExactPayload{Signature: hexutil.Encode(sig), Permit2Authorization: &w}, nil
}

// RecoverUpto returns who signed an upto payload.
func RecoverUpto(chainID uint64, p ExactPayload) (UptoAuth, common.Address, error) {
	if p.Permit2Authorization == nil {
		return UptoAuth{}, common.Address{}, fmt.Errorf("x402: the upto payload has no permit2Authorization")
	}
	a, err := ParseUptoAuth(*p.Permit2Authorization)
	if err != nil {
		return a, common.Address{}, err
	}
	who, err := recoverSigner(UptoTypedData(chainID, a), p.Signature)
	return a, who, err
}
