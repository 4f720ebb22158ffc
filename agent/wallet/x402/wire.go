// Package x402 pays for and sells HTTP resources with the x402 protocol
// (https://github.com/x402-foundation/x402): version 2 headers
// (PAYMENT-REQUIRED, PAYMENT-SIGNATURE, PAYMENT-RESPONSE) with the version 1
// headers (X-PAYMENT, X-PAYMENT-RESPONSE, requirements in the 402 body) as a
// fallback, and on EVM chains the "exact" scheme — an EIP-3009
// transferWithAuthorization signed as EIP-712 typed data — and, where the
// server offers it, the "upto" scheme (v2): a Permit2 authorization of a
// maximum of which the seller settles what the request cost (the buyer
// side only; Paywall sells with exact).
//
// Transport is the buyer: an http.RoundTripper that answers a 402 by asking
// its Approve callback (the core's spend policy) and, if approved, signing
// and retrying. Paywall is the seller: middleware that prices a handler and
// verifies and settles each payment through a Facilitator (/verify, /settle,
// /supported), with a durable ReplayGuard. Local is a facilitator that
// verifies signatures itself and settles with a wallet.Client, so an agent
// needs no third party to sell.
//
// The wire types follow @x402/core 2.27.0 (types/payments.ts,
// types/facilitator.ts); the EIP-712 message follows @x402/evm's exact
// scheme.
package x402

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

// Header names.
const (
	HeaderRequired  = "PAYMENT-REQUIRED"   // v2, server → client, on 402
	HeaderSignature = "PAYMENT-SIGNATURE"  // v2, client → server
	HeaderResponse  = "PAYMENT-RESPONSE"   // v2, server → client, on success
	HeaderPaymentV1 = "X-PAYMENT"          // v1, client → server
	HeaderRespV1    = "X-PAYMENT-RESPONSE" // v1, server → client
)

// SchemeExact is the scheme every seller offers: the exact amount.
const SchemeExact = "exact"

// ResourceInfo describes what is sold.
type ResourceInfo struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	MimeType    string `json:"mimeType,omitempty"`
}

// Requirements is one way to pay that a server accepts (v2
// PaymentRequirements; v1 fields are read into the same struct).
type Requirements struct {
	Scheme            string         `json:"scheme"`
	Network           string         `json:"network"`
	Asset             string         `json:"asset"`
	Amount            string         `json:"amount,omitempty"`
	PayTo             string         `json:"payTo"`
	MaxTimeoutSeconds int            `json:"maxTimeoutSeconds"`
	Extra             map[string]any `json:"extra,omitempty"`

	// v1 only.
	MaxAmountRequired string `json:"maxAmountRequired,omitempty"`
	Resource          string `json:"resource,omitempty"`
	Description       string `json:"description,omitempty"`
	MimeType          string `json:"mimeType,omitempty"`
}

// PaymentRequired is the 402 answer.
type PaymentRequired struct {
	X402Version int             `json:"x402Version"`
	Error       string          `json:"error,omitempty"`
	Resource    *ResourceInfo   `json:"resource,omitempty"`
	Accepts     []Requirements  `json:"accepts"`
	Extensions  json.RawMessage `json:"extensions,omitempty"`
}

// PaymentPayload is what the client sends (v2; v1 carries Scheme and
// Network at the top instead of Accepted).
type PaymentPayload struct {
	X402Version int           `json:"x402Version"`
	Resource    *ResourceInfo `json:"resource,omitempty"`
	Accepted    *Requirements `json:"accepted,omitempty"`
	Payload     ExactPayload  `json:"payload"`
	Scheme      string        `json:"scheme,omitempty"`  // v1
	Network     string        `json:"network,omitempty"` // v1
}

// ExactPayload is the EVM payload: the exact scheme's EIP-3009
// Authorization, or the upto scheme's Permit2Authorization.
type ExactPayload struct {
	Signature            string                `json:"signature"`
	Authorization        Authorization         `json:"authorization,omitzero"`
	Permit2Authorization *Permit2Authorization `json:"permit2Authorization,omitempty"`
}

// Authorization is an EIP-3009 TransferWithAuthorization message; numbers
// are decimal strings and the nonce 32 bytes of hex, as on the wire.
type Authorization struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Value       string `json:"value"`
	ValidAfter  string `json:"validAfter"`
	ValidBefore string `json:"validBefore"`
	Nonce       string `json:"nonce"`
}

// VerifyRequest is the body of POST /verify and POST /settle.
type VerifyRequest struct {
	X402Version         int            `json:"x402Version"`
	PaymentPayload      PaymentPayload `json:"paymentPayload"`
	PaymentRequirements Requirements   `json:"paymentRequirements"`
}

// VerifyResponse is the answer of /verify.
type VerifyResponse struct {
	IsValid        bool   `json:"isValid"`
	InvalidReason  string `json:"invalidReason,omitempty"`
	InvalidMessage string `json:"invalidMessage,omitempty"`
	Payer          string `json:"payer,omitempty"`
}

// SettleResponse is the answer of /settle and the PAYMENT-RESPONSE header.
type SettleResponse struct {
	Success      bool   `json:"success"`
	ErrorReason  string `json:"errorReason,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
	Payer        string `json:"payer,omitempty"`
	Transaction  string `json:"transaction"`
	Network      string `json:"network"`
	// Amount is what an upto payment settled (at most the authorized
	// maximum).
	Amount string `json:"amount,omitempty"`
}

// SupportedKind is one entry of /supported.
type SupportedKind struct {
	X402Version int            `json:"x402Version"`
	Scheme      string         `json:"scheme"`
	Network     string         `json:"network"`
	Extra       map[string]any `json:"extra,omitempty"`
}

// SupportedResponse is the answer of GET /supported.
type SupportedResponse struct {
	Kinds      []SupportedKind     `json:"kinds"`
	Extensions []string            `json:"extensions"`
	Signers    map[string][]string `json:"signers"`
}

// maxHeader bounds every header and body this package decodes.
const maxHeader = 64 << 10

// encodeHeader is base64(JSON), as every x402 header is.
func encodeHeader(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// decodeHeader decodes base64(JSON) into v.
func decodeHeader(name, value string, v any) error {
	if len(value) > maxHeader {
		return fmt.Errorf("x402: %s header is %d bytes, more than %d", name, len(value), maxHeader)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(value), "=")); err != nil {
			return fmt.Errorf("x402: %s header is not base64: %w", name, err)
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("x402: %s header is not the expected JSON: %w", name, err)
	}
	return nil
}

// v1Networks maps x402 v1 network names to EVM chain ids (the EVM subset of
// @x402/evm's v1 table, including IoTeX and peaq).
var v1Networks = map[string]uint64{
	"base": 8453, "base-sepolia": 84532, "iotex": 4689, "peaq": 3338, "polygon": 137, "polygon-amoy": 80002,
	"avalanche": 43114, "avalanche-fuji": 43113, "sei": 1329, "sei-testnet": 1328,
}

// ChainID returns the EVM chain id of a network: CAIP-2 "eip155:<id>" (v2)
// or a v1 name.
func ChainID(network string) (uint64, error) {
	if rest, ok := strings.CutPrefix(network, "eip155:"); ok {
		id, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || id == 0 {
			return 0, fmt.Errorf("network %q: %q is not a chain id", network, rest)
		}
		return id, nil
	}
	if id, ok := v1Networks[network]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("network %q is not an EVM network (want eip155:<chain id>)", network)
}

// Network returns the CAIP-2 name of an EVM chain.
func Network(chainID uint64) string { return "eip155:" + strconv.FormatUint(chainID, 10) }

// Offer is a validated EVM requirement of the exact or upto scheme.
type Offer struct {
	Version      int
	Scheme       string // SchemeExact or SchemeUpto
	ChainID      uint64
	Asset        common.Address
	PayTo        common.Address
	Amount       *big.Int
	MaxTimeout   int
	TokenName    string // EIP-712 domain name (extra.name); exact only
	TokenVersion string // EIP-712 domain version (extra.version); exact only
	// Facilitator may settle an upto payment (extra.facilitatorAddress).
	Facilitator common.Address
	Raw         Requirements
}

// ErrUnsupported is wrapped by requirements this package cannot pay.
var ErrUnsupported = errors.New("x402: unsupported payment requirements")

// ParseOffer validates one requirement of the exact or the upto scheme on
// an EVM chain; Amount is the exact price, or upto's maximum. Errors name
// the field and value.
func ParseOffer(version int, r Requirements) (Offer, error) {
	o := Offer{Version: version, Scheme: r.Scheme, Raw: r, MaxTimeout: r.MaxTimeoutSeconds}
	switch {
	case r.Scheme == SchemeUpto && version == 1:
		return o, fmt.Errorf("%w: scheme %q in x402 version 1 (upto is a version 2 scheme)", ErrUnsupported, r.Scheme)
	case r.Scheme != SchemeExact && r.Scheme != SchemeUpto:
		return o, fmt.Errorf("%w: scheme %q (this client pays %q and %q)", ErrUnsupported, r.Scheme, SchemeExact, SchemeUpto)
	}
	id, err := ChainID(r.Network)
	if err != nil {
		return o, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	o.ChainID = id
	if !isAddress(r.Asset) {
		return o, fmt.Errorf("x402: requirements.asset %q is not a token address", r.Asset)
	}
	if !isAddress(r.PayTo) {
		return o, fmt.Errorf("x402: requirements.payTo %q is not an address", r.PayTo)
	}
	o.Asset, o.PayTo = common.HexToAddress(r.Asset), common.HexToAddress(r.PayTo)
	amount, field := r.Amount, "amount"
	if version == 1 {
		amount, field = r.MaxAmountRequired, "maxAmountRequired"
	}
	v, ok := new(big.Int).SetString(amount, 10)
	if !ok || v.Sign() <= 0 || v.BitLen() > 256 {
		return o, fmt.Errorf("x402: requirements.%s %q is not a positive integer", field, amount)
	}
	o.Amount = v
	if r.MaxTimeoutSeconds <= 0 {
		return o, fmt.Errorf("x402: requirements.maxTimeoutSeconds %d is not positive", r.MaxTimeoutSeconds)
	}
	if r.Scheme == SchemeUpto {
		fa, _ := r.Extra["facilitatorAddress"].(string)
		if !isAddress(fa) {
			return o, fmt.Errorf("x402: upto requirements.extra.facilitatorAddress %q is not an address (the facilitator the permit lets settle)", fa)
		}
		o.Facilitator = common.HexToAddress(fa)
		return o, nil
	}
	name, _ := r.Extra["name"].(string)
	ver, _ := r.Extra["version"].(string)
	if name == "" || ver == "" {
		return o, fmt.Errorf("x402: requirements.extra must carry the token's EIP-712 name and version (got %v)", r.Extra)
	}
	o.TokenName, o.TokenVersion = name, ver
	return o, nil
}

func isAddress(s string) bool {
	return (strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X")) && common.IsHexAddress(s)
}
