package x402

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/depai/depai/agent/wallet"
)

// Auth is a parsed Authorization.
type Auth struct {
	From, To                common.Address
	Value                   *big.Int
	ValidAfter, ValidBefore *big.Int
	Nonce                   [32]byte
}

// Wire returns the authorization as it travels.
func (a Auth) Wire() Authorization {
	return Authorization{From: a.From.Hex(), To: a.To.Hex(), Value: a.Value.String(), ValidAfter: a.ValidAfter.String(),
		ValidBefore: a.ValidBefore.String(), Nonce: hexutil.Encode(a.Nonce[:])}
}

// ParseAuth validates a wire authorization; errors name the field.
func ParseAuth(w Authorization) (Auth, error) {
	var a Auth
	if !isAddress(w.From) {
		return a, fmt.Errorf("x402: authorization.from %q is not an address", w.From)
	}
	if !isAddress(w.To) {
		return a, fmt.Errorf("x402: authorization.to %q is not an address", w.To)
	}
	a.From, a.To = common.HexToAddress(w.From), common.HexToAddress(w.To)
	if err := parseUints("authorization", []uintField{{"value", w.Value, &a.Value}, {"validAfter", w.ValidAfter, &a.ValidAfter}, {"validBefore", w.ValidBefore, &a.ValidBefore}}); err != nil {
		return a, err
	}
	nb, err := hexutil.Decode(w.Nonce)
	if err != nil || len(nb) != 32 {
		return a, fmt.Errorf("x402: authorization.nonce %q is not 32 bytes of 0x-hex", w.Nonce)
	}
	copy(a.Nonce[:], nb)
	return a, nil
}

// TypedData is the EIP-712 TransferWithAuthorization message for an offer's
// token, as EIP-3009 and @x402/evm define it.
func TypedData(chainID uint64, asset common.Address, tokenName, tokenVersion string, a Auth) apitypes.TypedData {
	return apitypes.TypedData{
		Types: apitypes.Types{
			"EIP712Domain": {{Name: "name", Type: "string"}, {Name: "version", Type: "string"}, {Name: "chainId", Type: "uint256"}, {Name: "verifyingContract", Type: "address"}},
			"TransferWithAuthorization": {
				{Name: "from", Type: "address"}, {Name: "to", Type: "address"}, {Name: "value", Type: "uint256"},
				{Name: "validAfter", Type: "uint256"}, {Name: "validBefore", Type: "uint256"}, {Name: "nonce", Type: "bytes32"},
			},
		},
		PrimaryType: "TransferWithAuthorization",
		Domain: apitypes.TypedDataDomain{Name: tokenName, Version: tokenVersion, ChainId: math.NewHexOrDecimal256(int64(chainID)),
			VerifyingContract: asset.Hex()},
		Message: apitypes.TypedDataMessage{
			"from": a.From.Hex(), "to": a.To.Hex(), "value": a.Value.String(),
			"validAfter": a.ValidAfter.String(), "validBefore": a.ValidBefore.String(), "nonce": hexutil.Encode(a.Nonce[:]),
		},
	}
}

// NewAuth builds the authorization for o's payment from `from`, valid from
// now until now+validity (at most the offer's maxTimeoutSeconds), with a
// random nonce.
func NewAuth(o Offer, from common.Address, now time.Time, validity time.Duration) (Auth, error) {
	if max := time.Duration(o.MaxTimeout) * time.Second; validity <= 0 || validity > max {
		validity = max
	}
	a := Auth{From: from, To: o.PayTo, Value: new(big.Int).Set(o.Amount), ValidAfter: new(big.Int),
		ValidBefore: big.NewInt(now.Add(validity).Unix())}
	if _, err := rand.Read(a.Nonce[:]); err != nil {
		return a, fmt.Errorf("x402: nonce: %w", err)
	}
	return a, nil
}

// SignAuth signs an authorization for o's token.
func SignAuth(signer wallet.Signer, o Offer, a Auth) (ExactPayload, error) {
	sig, err := signer.SignTypedData(TypedData(o.ChainID, o.Asset, o.TokenName, o.TokenVersion, a))
	if err != nil {
		return ExactPayload{}, err
	}
	return ExactPayload{Signature: hexutil.Encode(sig), Authorization: a.Wire()}, nil
}

// Recover returns who signed a payload for an offer.
func Recover(o Offer, p ExactPayload) (Auth, common.Address, error) {
	a, err := ParseAuth(p.Authorization)
	if err != nil {
		return a, common.Address{}, err
	}
	who, err := recoverSigner(TypedData(o.ChainID, o.Asset, o.TokenName, o.TokenVersion, a), p.Signature)
	return a, who, err
}

// recoverSigner returns who made a payload's 0x-hex signature of td.
func recoverSigner(td apitypes.TypedData, signature string) (common.Address, error) {
	sig, err := hexutil.Decode(signature)
	if err != nil {
		return common.Address{}, fmt.Errorf("x402: payload.signature is not 0x-hex: %w", err)
	}
	who, err := wallet.RecoverTypedData(td, sig)
	if err != nil {
		return common.Address{}, fmt.Errorf("x402: payload.signature: %w", err)
	}
	return who, nil
}

// uintField is a uint256 field of a wire authorization and where it goes.
type uintField struct {
	name, v string
	dst     **big.Int
}

// parseUints parses decimal uint256 fields; an error names the field as
// prefix.name.
func parseUints(prefix string, fields []uintField) error {
	for _, f := range fields {
		n, ok := new(big.Int).SetString(f.v, 10)
		if !ok || n.Sign() < 0 || n.BitLen() > 256 {
			return fmt.Errorf("x402: %s.%s %q is not a uint256", prefix, f.name, f.v)
		}
		*f.dst = n
	}
	return nil
}

// ReplayKey identifies an authorization for a replay guard: the token
// contract itself refuses a second use of (from, nonce).
func ReplayKey(chainID uint64, asset common.Address, a Auth) string {
	return strings.ToLower(fmt.Sprintf("%d:%s:%s:%s", chainID, asset.Hex(), a.From.Hex(), hexutil.Encode(a.Nonce[:])))
}
