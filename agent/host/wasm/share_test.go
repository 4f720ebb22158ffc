package wasm

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/internal/wasmbuild"
	"github.com/depai/depai/sdk/wire"
)

// TestArtifactCompiledOnce loads one artifact as several plugins, as the
// agents of a fleet do: they share one compiled module (one runtime, one
// copy of the machine code) while their instances stay apart — a guest
// stopped at its deadline in one leaves the other's calls alone — and the
// module goes when the last of them closes. A different memory limit needs
// a runtime of its own.
func TestArtifactCompiledOnce(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := New(Config{CacheDir: wasmbuild.CacheDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	h := host.New(host.Config{Logger: quiet})
	ctx := context.Background()
	path := wasmbuild.Build(t, "../../../examples/plugins/chaos")
	load := func(name string, mem uint64) *plugin {
		inst, err := tr.Load(ctx, host.LoadSpec{Name: name, Path: path, Host: h, Limits: host.Limits{MemoryBytes: mem}})
		if err != nil {
			t.Fatal(err)
		}
		return inst.(*plugin)
	}
	echo := func(p *plugin) {
		t.Helper()
		r := p.Call(ctx, wire.Call{Method: "chaos.echo", Payload: json.RawMessage(`{"text":"` + p.name + `"}`)})
		if r.Error != nil || string(r.Payload) != `{"text":"`+p.name+`"}` {
			t.Fatalf("%s: chaos.echo = %s, %v", p.name, r.Payload, r.Error)
		}
	}
	a, b := load("a", 32<<20), load("b", 32<<20)
	other := load("other", 48<<20)
	if a.mod != b.mod || a.mod == other.mod {
		t.Fatalf("modules: a %p, b %p, other (another memory limit) %p; want a and b to share theirs only", a.mod, b.mod, other.mod)
	}
	if n := len(tr.modules); n != 2 {
		t.Fatalf("%d compiled modules held; want 2", n)
	}
	spun := make(chan wire.Result)
	go func() {
		spun <- a.Call(ctx, wire.Call{Method: "chaos.spin", Payload: json.RawMessage(`{}`), Deadline: time.Now().Add(300 * time.Millisecond).UnixNano()})
	}()
	echo(b)
	if r := <-spun; r.Error == nil || r.Error.Code != wire.CodeTimeout {
		t.Fatalf("chaos.spin = %+v; want a timeout", r)
	}
	echo(a)
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	echo(b)
	for _, p := range []*plugin{b, other} {
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tr.modules); n != 0 {
		t.Fatalf("%d compiled modules held after every plugin closed", n)
	}
}
