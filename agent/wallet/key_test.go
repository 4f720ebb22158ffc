package wallet

import (
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

func TestKeyCreateReloadSeal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "evm.json")
	cfg := KeyConfig{Path: path, Passphrase: "correct horse", LightKDF: true}
	k1, err := OpenKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	raw, _ := os.ReadFile(path)
	var v3 struct {
		Version int    `json:"version"`
		Address string `json:"address"`
		Crypto  struct {
			Cipher string `json:"cipher"`
			KDF    string `json:"kdf"`
		} `json:"crypto"`
	}
	if err := json.Unmarshal(raw, &v3); err != nil || v3.Version != 3 || v3.Crypto.KDF != "scrypt" || v3.Crypto.Cipher != "aes-128-ctr" {
		t.Fatalf("not a v3 keystore: %s (%v)", raw, err)
	}
	if !strings.EqualFold("0x"+v3.Address, k1.Address().Hex()) {
		t.Fatalf("keystore address %s, key %s", v3.Address, k1.Address())
	}
	if strings.Contains(string(raw), "correct horse") {
		t.Fatal("passphrase in the key file")
	}
	k2, err := OpenKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Address() != k2.Address() {
		t.Fatalf("reload gave another key: %s vs %s", k1.Address(), k2.Address())
	}
	if _, err := OpenKey(KeyConfig{Path: path, Passphrase: "wrong"}); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := OpenKey(cfg); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("world-readable key: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("{}"), 0o600)
	if _, err := OpenKey(cfg); err == nil || !strings.Contains(err.Error(), "not a Web3 Secret Storage key file") {
		t.Fatalf("garbage key file: %v", err)
	}
}

func TestKeySigns(t *testing.T) {
	priv, _ := crypto.GenerateKey()
	path := filepath.Join(t.TempDir(), "k.json")
	k, err := ImportKey(KeyConfig{Path: path}, crypto.FromECDSA(priv))
	if err != nil {
		t.Fatal(err)
	}
	if k.Address() != crypto.PubkeyToAddress(priv.PublicKey) {
		t.Fatal("imported key has another address")
	}
	tx, err := k.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(3338), GasFeeCap: big.NewInt(1), GasTipCap: big.NewInt(1), Gas: 21000}), big.NewInt(3338))
	if err != nil {
		t.Fatal(err)
	}
	from, err := types.Sender(types.LatestSignerForChainID(big.NewInt(3338)), tx)
	if err != nil || from != k.Address() {
		t.Fatalf("sender %s, %v", from, err)
	}
	// A second import over an existing key file is refused, never replacing it.
	other, _ := crypto.GenerateKey()
	if _, err := ImportKey(KeyConfig{Path: path}, crypto.FromECDSA(other)); err == nil {
		t.Fatal("import over an existing key file succeeded")
	}
	if k2, err := OpenKey(KeyConfig{Path: path}); err != nil || k2.Address() != k.Address() {
		t.Fatalf("key file replaced: %v", err)
	}
}
