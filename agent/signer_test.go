package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/depai/depai/agent/identity"
)

// TestIdentitySigner: the plugins' signer is the agent's identity key in
// DataDir/identity, created (0600) on the first signature and the same key
// after a restart.
func TestIdentitySigner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, identity.KeyDir, "rover.key")
	s := newIdentitySigner(dir, "rover")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a key file before any signature: %v", err)
	}
	a, err := s.Sign(context.Background(), []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v; want mode 0600", fi, err)
	}
	if err := identity.Verify(a.DID, []byte("m"), a.Signature); err != nil {
		t.Fatal(err)
	}
	b, err := newIdentitySigner(dir, "rover").Sign(context.Background(), []byte("m"))
	if err != nil || b.DID != a.DID {
		t.Fatalf("after a restart: %s, %v; want %s", b.DID, err, a.DID)
	}
	if _, err := newIdentitySigner(dir, "../x").Sign(context.Background(), nil); err == nil {
		t.Fatal("an agent name that is a path signed")
	}
}
