package wire

import "encoding/binary"

// HostSign signs bytes with the agent's Ed25519 identity key for a plugin
// granted Capabilities.Sign. The payload is a SignArgs, the result a
// Signature. The key never leaves the core, and every signature is audited.
const HostSign = "identity.sign"

// SignDomain begins every message the core signs for a plugin (see
// SignedBytes). The identity key also signs the agent's fleet envelopes and
// its NATS logins; this prefix, which none of those begin with, keeps a
// plugin from having one of them signed.
const SignDomain = "depai.plugin.sign.v1\x00"

// SignArgs is the payload of HostSign.
type SignArgs struct {
	Message []byte `json:"message"`
}

// Signature is the result of HostSign: an Ed25519 signature over
// SignedBytes(Plugin, message) by the key of Signer.
type Signature struct {
	Algorithm string `json:"algorithm"`  // "Ed25519"
	Signer    string `json:"signer"`     // the agent's did:key
	PublicKey []byte `json:"public_key"` // its 32-byte Ed25519 public key
	Plugin    string `json:"plugin"`     // the plugin it was signed for
	Signature []byte `json:"signature"`  // 64 bytes
}

// SignAlgorithm is Signature.Algorithm.
const SignAlgorithm = "Ed25519"

// SignedBytes is what the core signs when plugin asks to sign msg: the
// domain, the plugin's name (length-prefixed, so no choice of name and
// message collides with another), then msg. A verifier rebuilds it from a
// Signature's Plugin and the message.
func SignedBytes(plugin string, msg []byte) []byte {
	b := make([]byte, 0, len(SignDomain)+binary.MaxVarintLen64+len(plugin)+len(msg))
	b = append(b, SignDomain...)
	b = binary.AppendUvarint(b, uint64(len(plugin)))
	b = append(b, plugin...)
	return append(b, msg...)
}
