package onchain

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/depai/depai/agent/wallet"
)

// IoIDDevice is what ioIDRegistry holds for a device.
type IoIDDevice struct {
	DID     string // documentID: did:io:0x…
	Hash    common.Hash
	URI     string
	TokenID *big.Int
}

// permit is ioIDRegistry's EIP-712 message: the device signs that owner may
// register (or update) it, with the device's current nonce.
func permit(chainID uint64, registry, owner common.Address, nonce *big.Int) apitypes.TypedData {
	return apitypes.TypedData{
		Types: apitypes.Types{
			"EIP712Domain": {{Name: "name", Type: "string"}, {Name: "version", Type: "string"}, {Name: "chainId", Type: "uint256"}, {Name: "verifyingContract", Type: "address"}},
			"Permit":       {{Name: "owner", Type: "address"}, {Name: "nonce", Type: "uint256"}},
		},
		PrimaryType: "Permit",
		Domain:      apitypes.TypedDataDomain{Name: "ioIDRegistry", Version: "1", ChainId: math.NewHexOrDecimal256(int64(chainID)), VerifyingContract: registry.Hex()},
		Message:     apitypes.TypedDataMessage{"owner": owner.Hex(), "nonce": nonce.String()},
	}
}

// IoIDRegistration is one device registration.
type IoIDRegistration struct {
	ChainID  uint64
	Registry common.Address
	// DeviceNFT and TokenID name the device NFT of the project the device
	// joins; the registry takes it from its owner (the sender).
	DeviceNFT common.Address
	TokenID   *big.Int
	// Hash and URI are the DID document's SHA-256 and where it is served.
	Hash common.Hash
	URI  string
}

// IoIDRegister encodes register(deviceContract, tokenId, device, hash, uri,
// v, r, s) for a device whose key is also the sender (an agent registers
// itself): the device signs Permit(owner = its own address, nonce =
// nonces(device)) as the registry checks.
func IoIDRegister(ctx context.Context, c ethereum.ContractCaller, device wallet.Signer, reg IoIDRegistration) ([]byte, error) {
	if reg.Hash == (common.Hash{}) {
		return nil, errors.New("onchain: ioID registration needs the DID document's hash (the registry refuses an empty one)")
	}
	if reg.TokenID == nil {
		return nil, errors.New("onchain: ioID registration needs the device NFT's token id")
	}
	v, r, s, err := ioidPermit(ctx, c, device, reg.ChainID, reg.Registry)
	if err != nil {
		return nil, err
	}
	return ioid().Pack("register", reg.DeviceNFT, reg.TokenID, device.Address(), reg.Hash, reg.URI, v, r, s)
}

// IoIDUpdate encodes update(device, hash, uri, v, r, s): a new DID document
// for a registered device.
func IoIDUpdate(ctx context.Context, c ethereum.ContractCaller, device wallet.Signer, reg IoIDRegistration) ([]byte, error) {
	v, r, s, err := ioidPermit(ctx, c, device, reg.ChainID, reg.Registry)
	if err != nil {
		return nil, err
	}
	return ioid().Pack("update", device.Address(), reg.Hash, reg.URI, v, r, s)
}

func ioidPermit(ctx context.Context, c ethereum.ContractCaller, device wallet.Signer, chainID uint64, registry common.Address) (v uint8, r, s [32]byte, err error) {
	nonce, err := ioidUint(ctx, c, registry, "nonces", device.Address())
	if err != nil {
		return 0, r, s, err
	}
	sig, err := device.SignTypedData(permit(chainID, registry, device.Address(), nonce))
	if err != nil {
		return 0, r, s, fmt.Errorf("onchain: sign the ioID permit: %w", err)
	}
	copy(r[:], sig[:32])
	copy(s[:], sig[32:64])
	return sig[64], r, s, nil
}

func ioidCall(ctx context.Context, c ethereum.ContractCaller, registry common.Address, method string, args ...any) ([]any, error) {
	data, err := ioid().Pack(method, args...)
	if err != nil {
		return nil, err
	}
	out, err := call(ctx, c, registry, data)
	if err != nil {
		return nil, fmt.Errorf("onchain: ioIDRegistry %s.%s: %w", registry, method, err)
	}
	vals, err := ioid().Unpack(method, out)
	if err != nil || len(vals) != 1 {
		return nil, fmt.Errorf("onchain: ioIDRegistry %s.%s answered %d bytes that do not decode (is it an ioIDRegistry?): %v", registry, method, len(out), err)
	}
	return vals, nil
}

func ioidUint(ctx context.Context, c ethereum.ContractCaller, registry common.Address, method string, device common.Address) (*big.Int, error) {
	vals, err := ioidCall(ctx, c, registry, method, device)
	if err != nil {
		return nil, err
	}
	return vals[0].(*big.Int), nil
}

// ResolveIoID resolves a did:io:0x… through the registry: ErrNotFound when
// the device is not registered.
func ResolveIoID(ctx context.Context, c ethereum.ContractCaller, registry common.Address, did string) (IoIDDevice, error) {
	method, device, err := ParseDID(did)
	if err != nil {
		return IoIDDevice{}, err
	}
	if method != "io" {
		return IoIDDevice{}, fmt.Errorf("onchain: %q is not a did:io", clip(did))
	}
	vals, err := ioidCall(ctx, c, registry, "exists", device)
	if err != nil {
		return IoIDDevice{}, err
	}
	if !vals[0].(bool) {
		return IoIDDevice{}, fmt.Errorf("%w: %s is not in ioIDRegistry %s", ErrNotFound, did, registry)
	}
	var d IoIDDevice
	if vals, err = ioidCall(ctx, c, registry, "documentID", device); err != nil {
		return d, err
	}
	d.DID = vals[0].(string)
	if vals, err = ioidCall(ctx, c, registry, "documentHash", device); err != nil {
		return d, err
	}
	d.Hash = vals[0].([32]byte)
	if vals, err = ioidCall(ctx, c, registry, "documentURI", device); err != nil {
		return d, err
	}
	d.URI = vals[0].(string)
	if d.TokenID, err = ioidUint(ctx, c, registry, "deviceTokenId", device); err != nil {
		return d, err
	}
	if d.DID != wallet.IoDID(device) {
		return d, fmt.Errorf("onchain: ioIDRegistry %s names device %s %q, want %q", registry, device, d.DID, wallet.IoDID(device))
	}
	return d, nil
}
