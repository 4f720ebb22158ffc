package main

import (
	"context"
	"errors"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/hosttest"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/sdk/wire"
)

func TestGreet(t *testing.T) {
	pt := hosttest.New(t)
	out, err := hosttest.CallAs[GreetOut](pt, "hello.greet", GreetIn{Name: " Ada "})
	if err != nil || out.Greeting != "Hello, Ada!" {
		t.Fatalf("greet = %+v, %v", out, err)
	}
	for _, in := range []any{GreetIn{Name: "  "}, map[string]any{"nom": "Ada"}, map[string]any{"name": 1}} {
		_, err := pt.Call("hello.greet", in)
		if we, ok := errors.AsType[*wire.Error](err); !ok || we.Code != wire.CodeInvalidArgument {
			t.Errorf("greet(%v) error = %v; want invalid_argument", in, err)
		}
	}
}

// TestWASM builds the plugin to WASM and calls it through the agent's host.
func TestWASM(t *testing.T) {
	h := wasmtest.NewHost(t, host.Config{})
	p, err := h.Load(context.Background(), host.PluginSpec{Name: "hello", Path: wasmtest.Build(t, ".")})
	if err != nil {
		t.Fatal(err)
	}
	tools := p.Tools()
	if len(tools) != 1 || tools[0].Spec().Name != "hello.greet" {
		t.Fatalf("tools = %v", tools)
	}
	out, err := tools[0].Call(context.Background(), []byte(`{"name":"Grace"}`))
	if err != nil || string(out) != `{"greeting":"Hello, Grace!"}` {
		t.Fatalf("greet = %s, %v", out, err)
	}
}
