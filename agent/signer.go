package agent

import (
	"context"
	"sync"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/identity"
)

// identitySigner signs for an agent's plugins (host.Config.Signer) with the
// agent's identity key — the did:key its fleet messages are signed with —
// loaded, or created, in DataDir/identity on the first signature, so an
// agent whose plugins never sign touches no key file.
type identitySigner struct {
	load func() (*identity.Identity, error)
}

var _ host.Signer = identitySigner{}

func newIdentitySigner(dataDir, agent string) identitySigner {
	return identitySigner{load: sync.OnceValues(func() (*identity.Identity, error) {
		path, err := identity.KeyPath(dataDir, agent)
		if err != nil {
			return nil, err
		}
		id, _, err := identity.LoadOrCreate(identity.Config{Path: path})
		return id, err
	})}
}

func (s identitySigner) Sign(_ context.Context, msg []byte) (host.Signed, error) {
	id, err := s.load()
	if err != nil {
		return host.Signed{}, err
	}
	return host.Signed{DID: id.DID(), PublicKey: id.PublicKey(), Signature: id.Sign(msg)}, nil
}
