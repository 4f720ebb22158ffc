//go:build !depai_section_manifest

package sdk

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/depai/depai/sdk/internal/codecgen"
	"github.com/depai/depai/sdk/schema"
	"github.com/depai/depai/sdk/wire"
)

// This build derives its tools' JSON Schemas from their Go types, in the
// plugin, when the host first asks it to describe itself. `depai plugin
// build --wasm` builds a WASM plugin twice: once like this, to read its
// manifest, and once with the tag depai_section_manifest
// (schemas_section.go), which leaves schema derivation and the validator
// out of the module and ships the manifest in a custom section instead.

// toolSchemas returns a tool's lazily derived definition (see
// registry.AddLazyTool) and the check of arguments the host did not check,
// against the same schema and with the message the host's check gives.
func toolSchemas[In, Out any](name, description string, opts []ToolOption) (func() (wire.ToolDef, error), func([]byte) error) {
	codecTools = append(codecTools, codecgen.Tool{Name: name, In: reflect.TypeFor[In](), Out: reflect.TypeFor[Out]()})
	in := sync.OnceValues(schema.For[In])
	def := func() (wire.ToolDef, error) {
		ins, err := in()
		if err != nil {
			return wire.ToolDef{}, fmt.Errorf("tool %s: input: %w", name, err)
		}
		outs, err := schema.For[Out]()
		if err != nil {
			return wire.ToolDef{}, fmt.Errorf("tool %s: output: %w", name, err)
		}
		return toolDefinition(name, description, ins.JSON(), outs.JSON(), opts), nil
	}
	check := func(payload []byte) error {
		ins, err := in()
		if err != nil {
			return wire.Errorf(wire.CodeInternal, "tool %s: input schema: %v", name, err)
		}
		if err := ins.Validate(payload); err != nil {
			return wire.Errorf(wire.CodeInvalidArgument, "arguments for %s %v", name, err)
		}
		return nil
	}
	return def, check
}

// strictUnchecked: arguments the check above admitted need no strict decoding.
const strictUnchecked = false

// codecTools are the registered tools' types, which this build describes
// to `depai plugin build --wasm` as Go source of their codecs
// (describe_codecs, codecs_wasip1.go) for the build it ships.
var codecTools []codecgen.Tool

func sensorSchema[Out any](name string) (json.RawMessage, error) {
	codecTools = append(codecTools, codecgen.Tool{Name: name, Out: reflect.TypeFor[Out]()})
	s, err := schema.For[Out]()
	if err != nil {
		return nil, err
	}
	return s.JSON(), nil
}
