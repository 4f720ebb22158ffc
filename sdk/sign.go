package sdk

import (
	"context"

	"github.com/depai/depai/sdk/wire"
)

// Signature is what Sign returns: who signed, with which key, and the
// signature over wire.SignedBytes(Plugin, msg).
type Signature = wire.Signature

// Sign has msg signed with the agent's Ed25519 identity key; it needs the
// sign grant. The key stays in the agent: the plugin gets the signature,
// the signer's did:key and public key. What is signed is not msg alone but
// wire.SignedBytes(sig.Plugin, msg) — a verifier rebuilds it the same way —
// so a plugin can never have the agent's fleet messages signed. Every
// signature is audited.
func Sign(ctx context.Context, msg []byte) (Signature, error) {
	return hostCall[Signature](ctx, wire.HostSign, wire.SignArgs{Message: msg})
}
