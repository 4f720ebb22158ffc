package wasm_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/agent/host/wasm/internal/wasmbuild"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/sdk/wire"
)

// FuzzGuestCall sends arbitrary payloads straight to a guest, past the
// host's schema check: the SDK must answer every one with a result or an
// invalid_argument error, and the instance must keep serving.
func FuzzGuestCall(f *testing.F) {
	for _, s := range []string{`{"name":"Ada"}`, `{}`, ``, `null`, `[1,2]`, `{"name":"\ud800"}`, `{"name":1e999}`, "\x00\xff", `{"name":"a","x":{}}`} {
		f.Add([]byte(s))
	}
	tr, err := wasm.New(wasm.Config{CacheDir: wasmbuild.CacheDir(), Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	inst, err := tr.Load(context.Background(), host.LoadSpec{
		Name: "hello", Path: wasmtest.Build(f, plugins+"hello"), Host: host.New(host.Config{Logger: quiet}),
		Limits: host.Limits{Concurrency: 1},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = inst.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, payload []byte) {
		res := inst.Call(context.Background(), wire.Call{Method: "hello.greet", Payload: payload})
		switch {
		case res.Error == nil:
			if !json.Valid(res.Payload) {
				t.Fatalf("%q → invalid JSON %q", payload, res.Payload)
			}
		case res.Error.Code != wire.CodeInvalidArgument:
			t.Fatalf("%q → %v; want a result or invalid_argument", payload, res.Error)
		}
	})
}
