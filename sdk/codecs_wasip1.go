//go:build wasip1 && !depai_section_manifest

package sdk

import (
	"github.com/depai/depai/sdk/internal/codecgen"
	"github.com/depai/depai/sdk/wire"
)

// describe_codecs() i64 answers, as a call result, the Go source of codecs
// generated for the registered tools' types (sdk/internal/codecgen), or an
// empty payload; `depai plugin build --wasm` compiles it into the module it
// ships. Only this build, which the build tool runs once to describe the
// plugin, has it.
//
//go:wasmexport describe_codecs
func describeCodecs() uint64 {
	return result(wire.Result{Payload: codecgen.Generate(codecgen.Plugin, codecTools)})
}
