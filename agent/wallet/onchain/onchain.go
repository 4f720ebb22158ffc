// Package onchain registers and resolves an agent's identities on chain
// through the contracts' ABIs: peaq's DID precompile (did:peaq:0x…, the
// attributes addAttribute / readAttribute / updateAttribute /
// removeAttribute at 0x…0800) and IoTeX's ioIDRegistry (a device registered
// with its did:io, the hash and URI of its DID document, resolved with
// exists / documentID / documentHash / documentURI).
//
// It only encodes calls and decodes answers: a registration is a
// transaction the core sends with its wallet after the spend policy allowed
// its gas (see agent.Fleet.RegisterIdentities), and reads go through any
// ethereum.ContractCaller. The ABIs follow peaq-network-node's
// precompiles/peaq-did/did.sol and iotexproject/ioID-contracts'
// contracts/ioIDRegistry.sol.
package onchain

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/depai/depai/agent/wallet"
)

// PeaqDIDPrecompile is the address of peaq's DID precompile.
var PeaqDIDPrecompile = common.HexToAddress("0x0000000000000000000000000000000000000800")

const peaqABI = `[
{"type":"function","name":"readAttribute","stateMutability":"view","inputs":[{"name":"did_account","type":"address"},{"name":"name","type":"bytes"}],
 "outputs":[{"name":"","type":"tuple","components":[{"name":"name","type":"bytes"},{"name":"value","type":"bytes"},{"name":"validity","type":"uint32"},{"name":"created","type":"uint256"}]}]},
{"type":"function","name":"addAttribute","stateMutability":"nonpayable","inputs":[{"name":"did_account","type":"address"},{"name":"name","type":"bytes"},{"name":"value","type":"bytes"},{"name":"validity_for","type":"uint32"}],"outputs":[{"name":"","type":"bool"}]},
{"type":"function","name":"updateAttribute","stateMutability":"nonpayable","inputs":[{"name":"did_account","type":"address"},{"name":"name","type":"bytes"},{"name":"value","type":"bytes"},{"name":"validity_for","type":"uint32"}],"outputs":[{"name":"","type":"bool"}]},
{"type":"function","name":"removeAttribute","stateMutability":"nonpayable","inputs":[{"name":"did_account","type":"address"},{"name":"name","type":"bytes"}],"outputs":[{"name":"","type":"bool"}]},
{"type":"event","name":"AddAttribute","inputs":[{"name":"sender","type":"address"},{"name":"did_account","type":"address"},{"name":"name","type":"bytes"},{"name":"value","type":"bytes"},{"name":"validity","type":"uint32"}]},
{"type":"event","name":"UpdateAttribute","inputs":[{"name":"sender","type":"address"},{"name":"did_account","type":"address"},{"name":"name","type":"bytes"},{"name":"value","type":"bytes"},{"name":"validity","type":"uint32"}]}
]`

const ioidABI = `[
{"type":"function","name":"register","stateMutability":"payable","inputs":[{"name":"deviceContract","type":"address"},{"name":"tokenId","type":"uint256"},{"name":"device","type":"address"},{"name":"hash","type":"bytes32"},{"name":"uri","type":"string"},{"name":"v","type":"uint8"},{"name":"r","type":"bytes32"},{"name":"s","type":"bytes32"}],"outputs":[]},
{"type":"function","name":"update","stateMutability":"nonpayable","inputs":[{"name":"device","type":"address"},{"name":"hash","type":"bytes32"},{"name":"uri","type":"string"},{"name":"v","type":"uint8"},{"name":"r","type":"bytes32"},{"name":"s","type":"bytes32"}],"outputs":[]},
{"type":"function","name":"nonces","stateMutability":"view","inputs":[{"name":"device","type":"address"}],"outputs":[{"name":"","type":"uint256"}]},
{"type":"function","name":"exists","stateMutability":"view","inputs":[{"name":"device","type":"address"}],"outputs":[{"name":"","type":"bool"}]},
{"type":"function","name":"documentID","stateMutability":"pure","inputs":[{"name":"device","type":"address"}],"outputs":[{"name":"","type":"string"}]},
{"type":"function","name":"documentHash","stateMutability":"view","inputs":[{"name":"device","type":"address"}],"outputs":[{"name":"","type":"bytes32"}]},
{"type":"function","name":"documentURI","stateMutability":"view","inputs":[{"name":"device","type":"address"}],"outputs":[{"name":"","type":"string"}]},
{"type":"function","name":"deviceTokenId","stateMutability":"view","inputs":[{"name":"device","type":"address"}],"outputs":[{"name":"","type":"uint256"}]},
{"type":"event","name":"NewDevice","inputs":[{"name":"device","type":"address","indexed":true},{"name":"owner","type":"address"},{"name":"hash","type":"bytes32"},{"name":"uri","type":"string"}]}
]`

// The ABIs are parsed on first use, not at package init: every program
// that links the agent paid for them at its start (0.4 ms).
var (
	peaq = sync.OnceValue(func() abi.ABI { return mustABI(peaqABI) })
	ioid = sync.OnceValue(func() abi.ABI { return mustABI(ioidABI) })
)

func mustABI(s string) abi.ABI {
	a, err := abi.JSON(strings.NewReader(s))
	if err != nil {
		panic(err) // a constant above
	}
	return a
}

// Attribute is a peaq DID attribute as readAttribute returns it.
type Attribute struct {
	Name     []byte
	Value    []byte
	Validity uint32   // the block until which it is valid
	Created  *big.Int // when it was written (the chain's clock)
}

// ErrNotFound says an identity or attribute is not on chain.
var ErrNotFound = errors.New("onchain: not registered")

// ParseDID returns the address a did:peaq:0x… or did:io:0x… names.
func ParseDID(did string) (method string, a common.Address, err error) {
	for _, m := range []string{"peaq", "io"} {
		if rest, ok := strings.CutPrefix(did, "did:"+m+":"); ok {
			if !strings.HasPrefix(rest, "0x") || !common.IsHexAddress(rest) {
				return "", a, fmt.Errorf("onchain: %q: want did:%s:0x followed by a 20-byte hex address", clip(did), m)
			}
			return m, common.HexToAddress(rest), nil
		}
	}
	return "", a, fmt.Errorf("onchain: %q is neither a did:peaq:0x… nor a did:io:0x…", clip(did))
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Document is the DID document an agent publishes for its EVM key: the key
// as an EcdsaSecp256k1VerificationKey2019 (publicKeyHex, compressed), as
// ioctl's `did generate` writes it. Its SHA-256 is what ioIDRegistry keeps
// as the document hash.
func Document(did string, pub *ecdsa.PublicKey) []byte {
	vm := map[string]string{"id": did + "#owner", "type": "EcdsaSecp256k1VerificationKey2019", "controller": did,
		"publicKeyHex": hexutil.Encode(crypto.CompressPubkey(pub))[2:]}
	b, _ := json.Marshal(struct {
		Context        string              `json:"@context"`
		ID             string              `json:"id"`
		Authentication []map[string]string `json:"authentication"`
	}{"https://www.w3.org/ns/did/v1", did, []map[string]string{vm}})
	return b
}

// DocumentHash is the hash ioIDRegistry keeps for a document: SHA-256.
func DocumentHash(doc []byte) common.Hash { return sha256.Sum256(doc) }

// PeaqAdd encodes addAttribute(did_account, name, value, validity_for) for
// the DID precompile; validity_for is in blocks (0: the precompile's
// default, no expiry).
func PeaqAdd(did common.Address, name, value []byte, validityFor uint32) ([]byte, error) {
	return peaq().Pack("addAttribute", did, name, value, validityFor)
}

// PeaqUpdate encodes updateAttribute(did_account, name, value, validity_for).
func PeaqUpdate(did common.Address, name, value []byte, validityFor uint32) ([]byte, error) {
	return peaq().Pack("updateAttribute", did, name, value, validityFor)
}

// PeaqRemove encodes removeAttribute(did_account, name).
func PeaqRemove(did common.Address, name []byte) ([]byte, error) {
	return peaq().Pack("removeAttribute", did, name)
}

// call makes an eth_call; a revert comes back as *RevertError.
func call(ctx context.Context, c ethereum.ContractCaller, to common.Address, data []byte) ([]byte, error) {
	out, err := c.CallContract(ctx, ethereum.CallMsg{To: &to, Data: data}, nil)
	if err != nil {
		if reason, ok := revertReason(err); ok {
			return nil, &RevertError{Contract: to, Reason: reason}
		}
		return nil, err
	}
	return out, nil
}

// RevertError is a call the contract reverted, with its reason.
type RevertError struct {
	Contract common.Address
	Reason   string
}

func (e *RevertError) Error() string {
	return fmt.Sprintf("onchain: %s reverted: %q", e.Contract, e.Reason)
}

// revertReason reads Error(string) out of a node's "execution reverted"
// answer.
func revertReason(err error) (string, bool) {
	var de rpc.DataError
	if !errors.As(err, &de) {
		if strings.Contains(err.Error(), "execution reverted") {
			return strings.TrimSpace(strings.TrimPrefix(err.Error(), "execution reverted:")), true
		}
		return "", false
	}
	s, _ := de.ErrorData().(string)
	if b, derr := hexutil.Decode(s); derr == nil {
		if r, uerr := abi.UnpackRevert(b); uerr == nil {
			return r, true
		}
	}
	return de.Error(), strings.Contains(de.Error(), "revert")
}

// PeaqRead reads an attribute of did from the precompile at contract
// (PeaqDIDPrecompile on peaq). ErrNotFound when it does not exist (the
// precompile reverts "Cannot find the item").
func PeaqRead(ctx context.Context, c ethereum.ContractCaller, contract, did common.Address, name []byte) (Attribute, error) {
	data, err := peaq().Pack("readAttribute", did, name)
	if err != nil {
		return Attribute{}, err
	}
	out, err := call(ctx, c, contract, data)
	if re, ok := errors.AsType[*RevertError](err); ok && strings.Contains(re.Reason, "Cannot find") {
		return Attribute{}, fmt.Errorf("%w: %s has no attribute %q", ErrNotFound, wallet.PeaqDID(did), name)
	}
	if err != nil {
		return Attribute{}, fmt.Errorf("onchain: readAttribute(%s, %q): %w", did, name, err)
	}
	vals, err := peaq().Unpack("readAttribute", out)
	if err != nil || len(vals) != 1 {
		return Attribute{}, fmt.Errorf("onchain: readAttribute(%s, %q) answered %d bytes that are not an Attribute: %v", did, name, len(out), err)
	}
	// The tuple type comes from the constant ABI above, so the conversion
	// cannot fail once Unpack succeeded.
	a := *abi.ConvertType(vals[0], new(Attribute)).(*Attribute)
	return a, nil
}
