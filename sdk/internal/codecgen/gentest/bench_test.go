package gentest

import (
	"testing"

	"github.com/depai/depai/sdk/internal/codec"
)

// echo100 is BenchmarkCall's document (agent/host/wasm).
var echo100 = []byte(`{"text":"the quick brown fox jumps over the lazy dog twice","count":7,"tags":["alpha","beta","gam"]}`)

// BenchmarkEcho decodes and encodes BenchmarkCall's document with the
// generated and the reflective codec. Run it in a WASM guest, where the
// difference is (GOOS=wasip1 GOARCH=wasm go test -exec 'wazero run' …, with
// wazero's CLI from github.com/tetratelabs/wazero/cmd/wazero).
func BenchmarkEcho(b *testing.B) {
	dec, enc := generated[Echo](b, "Echo")
	b.Run("decode/generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v Echo
			if !dec(echo100, false, &v) {
				b.Fatal("declined")
			}
		}
	})
	b.Run("decode/reflective", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v Echo
			if err := codec.Unmarshal(echo100, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	var v Echo
	if err := codec.Unmarshal(echo100, &v); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	b.Run("encode/generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := enc(buf[:0], &v); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encode/reflective", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
