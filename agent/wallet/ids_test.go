package wallet

import (
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// TestIdentities checks the IoTeX native form against IoTeX's documented
// example (docs.iotex.io, "Address Conversion": private key 7fda34c8…a4b1).
func TestIdentities(t *testing.T) {
	priv, err := crypto.HexToECDSA("7fda34c8319534253619f69604ffbd43e315e319b84c03ea4f19e1a0e439a4b1")
	if err != nil {
		t.Fatal(err)
	}
	a := crypto.PubkeyToAddress(priv.PublicKey)
	if a != common.HexToAddress("0x95E20FD5FDd9A8D9D174C7fAE7c3F9eC51BBbF36") {
		t.Fatalf("address %s", a)
	}
	ids := Identities(a)
	for k, want := range map[string]string{
		"iotex":    "io1jh3ql40amx5dn5t5claw0slea3gmh0ek8flwlp",
		"peaq_did": "did:peaq:0x95E20FD5FDd9A8D9D174C7fAE7c3F9eC51BBbF36",
		"ioid_did": "did:io:0x95e20fd5fdd9a8d9d174c7fae7c3f9ec51bbbf36",
	} {
		if ids[k] != want {
			t.Errorf("%s = %s, want %s", k, ids[k], want)
		}
	}
}
