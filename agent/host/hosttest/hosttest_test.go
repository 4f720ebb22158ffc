package hosttest_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/hosttest"
	"github.com/depai/depai/sdk/wire"
)

// TestSandboxRules: a plugin under hosttest runs its WASM build and meets
// production's rules — here the hostile plugin reading a file and drawing
// randomness in two instances.
func TestSandboxRules(t *testing.T) {
	p := hosttest.New(t, hosttest.Dir("../testdata/hostile"), hosttest.Grants(wire.Capabilities{}))
	type out struct {
		Value string `json:"value"`
		Err   string `json:"err"`
	}
	r, err := hosttest.CallAs[out](p, "hostile.read", map[string]string{"path": "/etc/passwd"})
	if err != nil || r.Err == "" {
		t.Fatalf("read /etc/passwd under hosttest = %+v, %v; want the sandbox to refuse it", r, err)
	}
	a, _ := hosttest.CallAs[out](p, "hostile.rand", struct{}{})
	q := hosttest.New(t, hosttest.Dir("../testdata/hostile"), hosttest.Grants(wire.Capabilities{}))
	b, _ := hosttest.CallAs[out](q, "hostile.rand", struct{}{})
	if a.Value == "" || a.Value == b.Value {
		t.Fatalf("randomness %q and %q", a.Value, b.Value)
	}
	_, err = p.Call("hostile.read", json.RawMessage(`{"path":7}`))
	if we, ok := errors.AsType[*wire.Error](err); !ok || we.Code != wire.CodeInvalidArgument {
		t.Fatalf("bad arguments = %v; want invalid_argument", err)
	}
	if c := p.Plugin().Confinement(); len(c.Enforced) == 0 {
		t.Fatal("no confinement reported")
	}
}

// TestGrantsDefaultToRequests: without Grants the plugin gets what it
// asks for; with fewer it is refused, naming what is missing.
func TestGrantsDefaultToRequests(t *testing.T) {
	p := hosttest.New(t, hosttest.Dir("../../../examples/plugins/notes"))
	if m := p.Manifest(); m.Name != "notes" {
		t.Fatalf("manifest %+v", m)
	}
	_, err := hosttest.Load(t, hosttest.Dir("../../../examples/plugins/notes"), hosttest.Grants(wire.Capabilities{MemoryRead: []string{"notes"}}))
	if err == nil {
		t.Fatal("loaded without its memory_write grant")
	}
	if testing.Short() {
		return
	}
	// The same package as a process plugin, confined by the kernel.
	pp := hosttest.New(t, hosttest.Dir("../testdata/hostile"), hosttest.Transport(host.KindProcess), hosttest.Grants(wire.Capabilities{}))
	if c := pp.Plugin().Confinement(); len(c.Enforced) == 0 {
		t.Fatal("no confinement reported for the process plugin")
	}
}
