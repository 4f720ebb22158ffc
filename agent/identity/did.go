package identity

import (
	"crypto/ed25519"
	"fmt"
	"strings"
)

// didKeyPrefix is the did:key method prefix followed by the multibase code
// for base58btc ('z').
const didKeyPrefix = "did:key:z"

// ed25519Multicodec is the unsigned-varint multicodec code 0xed
// (ed25519-pub): 0xed 0x01.
var ed25519Multicodec = [2]byte{0xed, 0x01}

// maxDIDKeyBytes bounds a decoded did:key: a multicodec prefix and an
// uncompressed public key of the larger key types.
const maxDIDKeyBytes = 2 + 65

// DIDFromPublicKey returns the did:key of an Ed25519 public key:
// "did:key:z" + base58btc(0xed 0x01 ‖ key).
func DIDFromPublicKey(pub ed25519.PublicKey) string {
	b := make([]byte, 0, 2+len(pub))
	b = append(b, ed25519Multicodec[:]...)
	b = append(b, pub...)
	return didKeyPrefix + b58Encode(b)
}

// ParseDID returns the Ed25519 public key a did:key names. Only Ed25519
// did:keys are accepted; anything else is an error saying what was found.
func ParseDID(did string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(did, didKeyPrefix)
	if !ok {
		if strings.HasPrefix(did, "did:key:") {
			return nil, fmt.Errorf("identity: did %q: want base58btc multibase ('z' after did:key:)", clip(did))
		}
		return nil, fmt.Errorf("identity: did %q: want a did:key (did:key:z…)", clip(did))
	}
	// Decode up to the size of any key type's did:key, so that another key
	// type is reported as such rather than as too long.
	raw, err := b58Decode(rest, maxDIDKeyBytes)
	if err != nil {
		return nil, fmt.Errorf("identity: did %q: %w", clip(did), err)
	}
	if len(raw) < 2 || raw[0] != ed25519Multicodec[0] || raw[1] != ed25519Multicodec[1] {
		return nil, fmt.Errorf("identity: did %q: want the ed25519-pub multicodec 0xed01", clip(did))
	}
	if len(raw) != 2+ed25519.PublicKeySize {
		return nil, fmt.Errorf("identity: did %q: key is %d bytes, want %d", clip(did), len(raw)-2, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw[2:]), nil
}

// clip keeps error messages about hostile input short.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
