//go:build depai_section_manifest

// Package gencodec is what the code `depai plugin build --wasm` generates
// for a plugin's tool types (sdk/internal/codecgen) calls: the SDK's JSON
// codec without reflection. It is no API for plugin authors — it exists
// only in the tagged build that the build tool compiles that code into —
// and it only passes sdk/internal/codec through, which a plugin's package
// may not import.
package gencodec

import "github.com/depai/depai/sdk/internal/codec"

// Decoder reads one JSON document.
type Decoder = codec.Decoder

// NewDecoder reads data; strict is the mode for calls the host did not check.
func NewDecoder(data []byte, strict bool) Decoder { return codec.NewDecoder(data, strict) }

// MaxGeneratedDepth bounds the nesting a generated encoder follows.
const MaxGeneratedDepth = codec.MaxGeneratedDepth

// AppendString appends s as a JSON string.
func AppendString(dst []byte, s string) []byte { return codec.AppendString(dst, s) }

// AppendInt appends an integer.
func AppendInt(dst []byte, n int64) []byte { return codec.AppendInt(dst, n) }

// AppendUint appends an unsigned integer.
func AppendUint(dst []byte, n uint64) []byte { return codec.AppendUint(dst, n) }

// AppendFloat appends a float; NaN and the infinities are not ok.
func AppendFloat(dst []byte, f float64, bits int) ([]byte, bool) {
	return codec.AppendFloat(dst, f, bits)
}

// Register records a tool's generated decoder and encoder.
func Register(tool string, decode, encode any) { codec.Register(tool, decode, encode) }
