package interrupt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/depai/depai/agent/host/wasm/internal/interrupt"
)

// module assembles a WASM module from its sections (id, body).
func module(secs ...[]byte) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range secs {
		m = append(m, s[0], byte(len(s)-1))
		m = append(m, s[1:]...)
	}
	return m
}

var (
	typeVoid   = []byte{1, 1, 0x60, 0, 0}                  // one type: () -> ()
	oneFunc    = []byte{3, 1, 0}                           // one function of type 0
	mem        = []byte{5, 1, 0, 1}                        // one memory of one page
	exportSpin = []byte{7, 1, 4, 's', 'p', 'i', 'n', 0, 0} // export "spin" = func 0
	// spin: loop (br 0) end end — a loop that never ends.
	codeSpin = []byte{10, 1, 7, 0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}
	// count: a local counts to 1000 in a loop inside a block inside an if.
	codeCount = []byte{10, 1, 28, 1, 1, 0x7f,
		0x41, 0x01, 0x04, 0x40, // i32.const 1; if
		0x02, 0x40, 0x03, 0x40, // block; loop
		0x20, 0x00, 0x41, 0x01, 0x6a, 0x22, 0x00, // local.get 0; i32.const 1; i32.add; local.tee 0
		0x41, 0xe8, 0x07, 0x48, 0x0d, 0x00, // i32.const 1000; i32.lt_s; br_if 0
		0x0b, 0x0b, 0x0b, 0x0b} // end loop, block, if, function
	// globalOne reads a global the module lacks: index 0 is the interrupt global after a rewrite.
	codeGlobal  = []byte{10, 1, 6, 0, 0x23, 0x00, 0x1a, 0x0b, 0x0b}
	exportClash = []byte{7, 1, 15, 'd', 'e', 'p', 'a', 'i', '.', 'i', 'n', 't', 'e', 'r', 'r', 'u', 'p', 't', 0, 0}
)

func compile(t testing.TB, code []byte) (wazero.Runtime, wazero.CompiledModule, error) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { _ = rt.Close(ctx) })
	cm, err := rt.CompileModule(ctx, code)
	return rt, cm, err
}

// TestInterruptStopsASpinningGuest runs the rewritten endless loop in the
// compiler (no instrumentation of its own) and raises the flag, while the
// Go runtime collects garbage: a guest that never left its machine code
// would hold up the collector's stop-the-world, and with it the timer.
func TestInterruptStopsASpinningGuest(t *testing.T) {
	code, err := interrupt.Instrument(module(typeVoid, oneFunc, mem, exportSpin, codeSpin))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	flag := mod.ExportedGlobal(interrupt.Export).(api.MutableGlobal)
	if flag.Get() != 0 {
		t.Fatalf("flag starts at %d", flag.Get())
	}
	time.AfterFunc(50*time.Millisecond, func() { flag.Set(1) })
	gc := make(chan struct{})
	defer close(gc)
	go func() {
		for {
			select {
			case <-gc:
				return
			default:
				runtime.GC()
			}
		}
	}()
	done := make(chan error, 1)
	go func() { _, err := mod.ExportedFunction("spin").Call(ctx); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("spin ended with %v; want the unreachable trap", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the guest was not stopped")
	}
}

// TestInterruptKeepsBehaviour: a loop nested in blocks still runs to its
// end when the flag is down, and sections the module lacked are added.
func TestInterruptKeepsBehaviour(t *testing.T) {
	exportCount := []byte{7, 1, 5, 'c', 'o', 'u', 'n', 't', 0, 0}
	typeRet := []byte{1, 1, 0x60, 0, 1, 0x7f}
	body := append([]byte(nil), codeCount...)
	// Return the local: replace the function's final end with local.get 0; end.
	body = append(body[:len(body)-1], 0x20, 0x00, 0x0b)
	body[2] += 2
	orig := module(typeRet, oneFunc, mem, exportCount, body)
	code, err := interrupt.Instrument(orig)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(code, []byte{0x23}) < 1 {
		t.Fatal("no check inserted")
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	r, err := mod.ExportedFunction("count").Call(ctx)
	if err != nil || r[0] != 1000 {
		t.Fatalf("count = %v, %v; want 1000", r, err)
	}
	// A module with no export or global section gets both.
	code, err = interrupt.Instrument(module(typeVoid, oneFunc, mem, codeSpin))
	if err != nil {
		t.Fatal(err)
	}
	_, cm, err := compile(t, code)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.ExportedFunctions()["spin"]; ok {
		t.Fatal("spin was exported by the rewrite")
	}
}

func TestInterruptRefuses(t *testing.T) {
	tests := []struct {
		name        string
		code        []byte
		unsupported bool
		says        string
	}{
		{"not wasm", []byte("#!/bin/sh\n"), false, "not a WASM"},
		{"truncated", module(typeVoid, oneFunc, mem, exportSpin, codeSpin)[:20], false, "unexpected end"},
		{"missing global", module(typeVoid, oneFunc, mem, codeGlobal), false, "global 0 does not exist"},
		{"export clash", module(typeVoid, oneFunc, mem, exportClash, codeSpin), true, "already exports"},
		{"no memory", module(typeVoid, oneFunc, codeSpin), true, "0 memories"},
		{"threads", module(typeVoid, oneFunc, mem, []byte{10, 1, 5, 0, 0xfe, 0x03, 0x00, 0x0b}), true, "opcode 0xfe"},
		{"exceptions", module(typeVoid, oneFunc, mem, []byte{10, 1, 5, 0, 0x06, 0x40, 0x0b, 0x0b}), true, "opcode 0x6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := interrupt.Instrument(tt.code)
			if err == nil || errors.Is(err, interrupt.ErrUnsupported) != tt.unsupported || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Instrument = %v; want unsupported=%v saying %q", err, tt.unsupported, tt.says)
			}
		})
	}
}

// FuzzInstrument: the rewrite never panics, and a module wazero accepts is
// still accepted after it.
func FuzzInstrument(f *testing.F) {
	f.Add(module(typeVoid, oneFunc, mem, exportSpin, codeSpin))
	f.Add(module(typeVoid, oneFunc, mem, codeCount))
	f.Add(module(typeVoid, oneFunc, mem, codeGlobal))
	f.Add(module(typeVoid, oneFunc, mem, exportClash, codeSpin))
	f.Add(module(typeVoid, mem, []byte{6, 1, 0x7f, 0x01, 0x41, 0x07, 0x0b}))
	f.Fuzz(func(t *testing.T, code []byte) {
		out, err := interrupt.Instrument(code)
		if err != nil {
			return
		}
		if _, _, err := compile(t, code); err != nil {
			return
		}
		if _, _, err := compile(t, out); err != nil {
			t.Fatalf("the original compiles, the rewrite does not: %v", err)
		}
	})
}

// BenchmarkInstrument rewrites a Go guest (set DEPAI_BENCH_WASM to a .wasm;
// it is skipped otherwise): this is paid at every load, before the
// compilation cache is consulted.
func BenchmarkInstrument(b *testing.B) {
	path := os.Getenv("DEPAI_BENCH_WASM")
	if path == "" {
		b.Skip("DEPAI_BENCH_WASM names no module")
	}
	code, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(code)))
	for b.Loop() {
		if _, err := interrupt.Instrument(code); err != nil {
			b.Fatal(err)
		}
	}
}
