//go:build depai_section_manifest

package sdk

import (
	"encoding/json"
	"errors"

	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// This build (a WASM plugin built by `depai plugin build --wasm`) carries
// its manifest, schemas and all, in the module's depai.manifest custom
// section, which the build read from a build of the same source without
// this tag (schemas.go). The host reads the section instead of asking the
// plugin, so nothing here derives or checks schemas — which keeps
// github.com/google/jsonschema-go, regexp and math/big out of the module.
// A call the host did not check is decoded strictly (codec.UnmarshalStrict:
// what the derived schema refuses, it refuses).

// A describe call answers with this registration error, which makes the
// host refuse the plugin: only a module stripped of its section is asked.
func init() {
	registry.Default.Fail(errors.New("this module was built with the tag depai_section_manifest and describes itself in its depai.manifest custom section, which it lacks; build it with `depai plugin build --wasm`"))
}

func toolSchemas[In, Out any](name, description string, opts []ToolOption) (func() (wire.ToolDef, error), func([]byte) error) {
	def := func() (wire.ToolDef, error) { return toolDefinition(name, description, nil, nil, opts), nil }
	return def, func([]byte) error { return nil }
}

// strictUnchecked: a call the host did not check is decoded strictly.
const strictUnchecked = true

func sensorSchema[Out any](string) (json.RawMessage, error) { return nil, nil }
