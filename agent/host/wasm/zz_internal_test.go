package wasm

import (
	"context"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

func BenchmarkInit(b *testing.B) {
	ctx := context.Background()
	for _, f := range []string{"/tmp/h4guest.wasm", "/tmp/h4noexports.wasm", "/tmp/h4hello.wasm"} {
		for _, ensure := range []bool{false, true} {
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(ensure))
			wasi_snapshot_preview1.MustInstantiate(ctx, rt)
			rt.NewHostModuleBuilder("depai").NewFunctionBuilder().WithFunc(func(a, b, c, d, e, f uint32) uint64 { return 0 }).Export("host_call").
				NewFunctionBuilder().WithFunc(func(a, b uint32) uint32 { return 0 }).Export("host_result").
				NewFunctionBuilder().WithFunc(func(a, b uint32) {}).Export("log").Instantiate(ctx)
			code, _ := os.ReadFile(f)
			cm, err := rt.CompileModule(ctx, code)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(f[5:]+map[bool]string{true: "-ensure", false: ""}[ensure], func(b *testing.B) {
				for b.Loop() {
					m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
					if err != nil {
						b.Fatal(err)
					}
					m.Close(ctx)
				}
			})
		}
	}
}

func TestMemSize(t *testing.T) {
	ctx := context.Background()
	for _, f := range []string{"/tmp/h4guest.wasm", "/tmp/h4hello.wasm"} {
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig())
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		rt.NewHostModuleBuilder("depai").NewFunctionBuilder().WithFunc(func(a, b, c, d, e, f uint32) uint64 { return 0 }).Export("host_call").
			NewFunctionBuilder().WithFunc(func(a, b uint32) uint32 { return 0 }).Export("host_result").
			NewFunctionBuilder().WithFunc(func(a, b uint32) {}).Export("log").Instantiate(ctx)
		code, _ := os.ReadFile(f)
		cm, _ := rt.CompileModule(ctx, code)
		for _, m := range cm.ImportedMemories() {
			t.Log("imp", m)
		}
		for n, m := range cm.ExportedMemories() {
			t.Log(f, n, m.Min(), "pages")
		}
		m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
		if err != nil {
			t.Fatal(err)
		}
		t.Log(f, "after init", m.Memory().Size())
	}
}
