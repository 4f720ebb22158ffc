// Package wallet holds an agent's secp256k1 key and pays on EVM chains with
// it: balances, native and ERC-20 transfers with managed nonces, EIP-1559
// fees (legacy where the chain has no base fee), confirmations and receipts,
// and idempotency keys that survive a restart. The key never leaves the
// package: callers get its address and ask it to sign.
//
// Whether a payment may be made is not decided here: the core's policy
// engine asks agent/wallet/spend first. Subpackages: spend (the spend policy
// and ledger), x402 (paying for and selling HTTP resources).
package wallet

import (
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
	"github.com/google/uuid"
)

// Signer is what the rest of depai holds instead of a key.
type Signer interface {
	Address() common.Address
	// SignTx signs a transaction for chainID.
	SignTx(tx *types.Transaction, chainID *big.Int) (*types.Transaction, error)
	// SignTypedData signs EIP-712 typed data; the signature is r‖s‖v with
	// v = 27 or 28.
	SignTypedData(td apitypes.TypedData) ([]byte, error)
}

// Key is an agent's secp256k1 key. It is safe for concurrent use.
type Key struct {
	priv *ecdsa.PrivateKey
	addr common.Address
}

var _ Signer = (*Key)(nil)

// KeyConfig says where an agent's key lives and how it is sealed.
type KeyConfig struct {
	// Path of the Web3 Secret Storage (v3) JSON file, 0600.
	Path string
	// Passphrase seals the key (scrypt + AES-128-CTR); empty is allowed and
	// leaves the file protected by its permissions only. The caller reads it
	// from wherever it is configured; this package reads no environment.
	Passphrase string
	// LightKDF uses go-ethereum's light scrypt parameters (fast, weaker);
	// for tests and small devices. An empty passphrase always uses them,
	// since the KDF then protects nothing.
	LightKDF bool
}

// OpenKey loads the key at cfg.Path, creating a new random key there if the
// file does not exist. A key file that others can read is refused.
func OpenKey(cfg KeyConfig) (*Key, error) {
	if cfg.Path == "" {
		return nil, errors.New("wallet: KeyConfig.Path is empty")
	}
	k, err := loadKey(cfg)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	priv, err := ecdsa.GenerateKey(crypto.S256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("wallet: generate key: %w", err)
	}
	if err := writeKey(cfg, priv); err != nil {
		if errors.Is(err, fs.ErrExist) { // created concurrently: use that one
			return loadKey(cfg)
		}
		return nil, err
	}
	return &Key{priv: priv, addr: crypto.PubkeyToAddress(priv.PublicKey)}, nil
}

// ImportKey seals an existing private key (32 bytes) into a new key file.
func ImportKey(cfg KeyConfig, secret []byte) (*Key, error) {
	priv, err := crypto.ToECDSA(secret)
	if err != nil {
		return nil, fmt.Errorf("wallet: import key: %w", err)
	}
	if err := writeKey(cfg, priv); err != nil {
		return nil, err
	}
	return &Key{priv: priv, addr: crypto.PubkeyToAddress(priv.PublicKey)}, nil
}

func loadKey(cfg KeyConfig) (*Key, error) {
	st, err := os.Stat(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("wallet: key %s: %w", cfg.Path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("wallet: key %s has mode %04o; it must be readable by its owner only (chmod 600 %s)", cfg.Path, st.Mode().Perm(), cfg.Path)
	}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("wallet: key %s: %w", cfg.Path, err)
	}
	k, err := keystore.DecryptKey(data, cfg.Passphrase)
	if err != nil {
		if errors.Is(err, keystore.ErrDecrypt) {
			return nil, fmt.Errorf("wallet: key %s: wrong passphrase", cfg.Path)
		}
		return nil, fmt.Errorf("wallet: key %s is not a Web3 Secret Storage key file: %w", cfg.Path, err)
	}
	return &Key{priv: k.PrivateKey, addr: k.Address}, nil
}

func writeKey(cfg KeyConfig, priv *ecdsa.PrivateKey) error {
	n, p := keystore.StandardScryptN, keystore.StandardScryptP
	if cfg.LightKDF || cfg.Passphrase == "" {
		n, p = keystore.LightScryptN, keystore.LightScryptP
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return fmt.Errorf("wallet: key id: %w", err)
	}
	data, err := keystore.EncryptKey(&keystore.Key{Id: id, Address: crypto.PubkeyToAddress(priv.PublicKey), PrivateKey: priv}, cfg.Passphrase, n, p)
	if err != nil {
		return fmt.Errorf("wallet: seal key: %w", err)
	}
	dir := filepath.Dir(cfg.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wallet: key directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return fmt.Errorf("wallet: write key %s: %w", cfg.Path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wallet: write key %s: %w", cfg.Path, err)
	}
	// Link, not rename: it fails if the file appeared meanwhile, so an
	// existing key is never replaced.
	if err := os.Link(tmp.Name(), cfg.Path); err != nil {
		return fmt.Errorf("wallet: write key %s: %w", cfg.Path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Address is the key's EVM address.
func (k *Key) Address() common.Address { return k.addr }

// PublicKey is the key's public half, for the DID documents that publish it.
func (k *Key) PublicKey() *ecdsa.PublicKey { return &k.priv.PublicKey }

// SignTx signs tx for chainID with the latest signer for that chain.
func (k *Key) SignTx(tx *types.Transaction, chainID *big.Int) (*types.Transaction, error) {
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(chainID), k.priv)
	if err != nil {
		return nil, fmt.Errorf("wallet: sign transaction: %w", err)
	}
	return signed, nil
}

// SignTypedData signs EIP-712 typed data (r‖s‖v, v = 27 or 28).
func (k *Key) SignTypedData(td apitypes.TypedData) ([]byte, error) {
	hash, _, err := apitypes.TypedDataAndHash(td)
	if err != nil {
		return nil, fmt.Errorf("wallet: typed data: %w", err)
	}
	sig, err := crypto.Sign(hash, k.priv)
	if err != nil {
		return nil, fmt.Errorf("wallet: sign typed data: %w", err)
	}
	sig[64] += 27
	return sig, nil
}

// RecoverTypedData returns the address that signed td (r‖s‖v, v = 27/28 or
// 0/1).
func RecoverTypedData(td apitypes.TypedData, sig []byte) (common.Address, error) {
	if len(sig) != 65 {
		return common.Address{}, fmt.Errorf("wallet: signature is %d bytes, want 65", len(sig))
	}
	hash, _, err := apitypes.TypedDataAndHash(td)
	if err != nil {
		return common.Address{}, fmt.Errorf("wallet: typed data: %w", err)
	}
	s := append([]byte(nil), sig...)
	if s[64] >= 27 {
		s[64] -= 27
	}
	if s[64] > 1 {
		return common.Address{}, fmt.Errorf("wallet: signature recovery id %d is not 27 or 28", sig[64])
	}
	pub, err := crypto.SigToPub(hash, s)
	if err != nil {
		return common.Address{}, fmt.Errorf("wallet: recover signer: %w", err)
	}
	return crypto.PubkeyToAddress(*pub), nil
}
