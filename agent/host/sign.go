package host

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/depai/depai/sdk/wire"
)

// Signer signs for plugins with the agent's Ed25519 identity key, which
// stays behind it: a plugin gets signatures, never the key.
type Signer interface {
	Sign(ctx context.Context, msg []byte) (Signed, error)
}

// Signed is one signature and the key that made it.
type Signed struct {
	DID       string // the signer's did:key
	PublicKey ed25519.PublicKey
	Signature []byte
}

// sign serves wire.HostSign: the grant, then the Gate — which audits every
// signature by the digest of what was signed — then the Signer, over
// wire.SignedBytes so that no plugin can have a fleet envelope or a NATS
// login signed with the agent's key.
func (h *Host) sign(ctx context.Context, g *grant, payload []byte) ([]byte, *wire.Error) {
	if !g.spec.Grants.Sign {
		return nil, h.deny(ctx, g, wire.HostSign, "", "sign not granted")
	}
	var a wire.SignArgs
	if err := decode(wire.HostSign, payload, &a); err != nil {
		return nil, err
	}
	if h.cfg.Signer == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "%s: this agent has no identity key to sign with", wire.HostSign)
	}
	msg := wire.SignedBytes(g.spec.Name, a.Message)
	sum := sha256.Sum256(msg)
	digest := hex.EncodeToString(sum[:])
	// The audit names what was signed by its digest: the message itself may
	// be large, and it is the plugin's data, not the agent's decision.
	args, _ := json.Marshal(map[string]any{"sha256": digest, "bytes": len(a.Message)})
	done, werr := h.authorize(ctx, g, wire.HostSign, digest, wire.EffectWrite, args)
	if werr != nil {
		return nil, werr
	}
	s, err := h.cfg.Signer.Sign(ctx, msg)
	if err != nil {
		werr := &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s: %v", wire.HostSign, err)}
		done(outcome(nil, werr))
		return nil, werr
	}
	out, werr := encode(wire.Signature{Algorithm: wire.SignAlgorithm, Signer: s.DID, PublicKey: s.PublicKey, Plugin: g.spec.Name, Signature: s.Signature})
	done(outcome(out, werr))
	return out, werr
}
