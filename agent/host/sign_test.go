package host_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// idSigner is the agent side of host.Signer over a real identity key.
type idSigner struct{ id *identity.Identity }

func (s idSigner) Sign(_ context.Context, msg []byte) (host.Signed, error) {
	return host.Signed{DID: s.id.DID(), PublicKey: s.id.PublicKey(), Signature: s.id.Sign(msg)}, nil
}

// TestSign: identity.sign signs wire.SignedBytes(plugin, msg) with the
// agent's key — verifiable against its did:key, and never the bare
// message, so a plugin cannot have a fleet envelope signed — only for a
// plugin granted sign, and the real policy engine audits each signature by
// digest, as the plugin.
func TestSign(t *testing.T) {
	ctx := context.Background()
	store, err := memory.Open(ctx, memory.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log, err := policy.OpenLog(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	state, err := policy.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.New(ctx, policy.Config{Log: log, State: state})
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.FromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	h := wasmtest.NewHost(t, host.Config{Agent: "rover", Store: store, Gate: engine, Signer: idSigner{id}})
	hello := wasmtest.Build(t, plugins+"hello")
	for _, spec := range []host.PluginSpec{
		{Name: "signer", Path: hello, Grants: wire.Capabilities{Sign: true}},
		{Name: "other", Path: hello},
	} {
		if _, err := h.Load(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	msg := []byte(`{"projectID":1,"data":"x"}`)
	payload, _ := json.Marshal(wire.SignArgs{Message: msg})
	out, werr := h.HostCall(ctx, "signer", wire.HostSign, payload)
	if werr != nil {
		t.Fatal(werr)
	}
	var sig wire.Signature
	if err := json.Unmarshal(out, &sig); err != nil {
		t.Fatal(err)
	}
	if sig.Algorithm != "Ed25519" || sig.Signer != id.DID() || sig.Plugin != "signer" || !ed25519.PublicKey(sig.PublicKey).Equal(id.PublicKey()) {
		t.Fatalf("signature %+v", sig)
	}
	signed := wire.SignedBytes("signer", msg)
	if err := identity.Verify(sig.Signer, signed, sig.Signature); err != nil {
		t.Fatalf("the signature does not verify over SignedBytes: %v", err)
	}
	if identity.Verify(sig.Signer, msg, sig.Signature) == nil {
		t.Fatal("the bare message verifies: a plugin could have any bytes signed")
	}
	if !strings.HasPrefix(string(signed), wire.SignDomain) || strings.HasPrefix(string(signed), "depai.envelope") {
		t.Fatalf("signed bytes %q", signed)
	}

	if _, werr := h.HostCall(ctx, "other", wire.HostSign, payload); werr == nil || werr.Code != wire.CodeDenied {
		t.Fatalf("sign without the grant = %v; want denied", werr)
	}
	if _, werr := h.HostCall(ctx, "signer", wire.HostSign, []byte(`{"message":5}`)); werr == nil || werr.Code != wire.CodeInvalidArgument {
		t.Fatalf("a malformed sign = %v; want invalid_argument", werr)
	}
	unsigned := wasmtest.NewHost(t, host.Config{})
	if _, err := unsigned.Load(ctx, host.PluginSpec{Name: "signer", Path: hello, Grants: wire.Capabilities{Sign: true}}); err != nil {
		t.Fatal(err)
	}
	if _, werr := unsigned.HostCall(ctx, "signer", wire.HostSign, payload); werr == nil || werr.Code != wire.CodeUnavailable {
		t.Fatalf("sign on a host without a Signer = %v; want unavailable", werr)
	}

	sum := sha256.Sum256(signed)
	digest := hex.EncodeToString(sum[:])
	var decided, done bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !(decided && done); time.Sleep(20 * time.Millisecond) {
		for r, err := range store.Query(ctx, memory.Query{Namespace: policy.AuditNamespace}) {
			if err != nil {
				t.Fatal(err)
			}
			var e policy.Entry
			if json.Unmarshal(r.Data, &e) != nil || e.Action != wire.HostSign || e.Target != digest || e.Principal.ID != "signer" {
				continue
			}
			decided = decided || e.Decision == policy.Allow
			done = done || len(e.Result) > 0
		}
	}
	if !decided || !done {
		t.Fatalf("audit of the signature: decision %v, outcome %v; want both, by digest %s", decided, done, digest)
	}
}
