// Package tool is what an agent can do: named JSON-in/JSON-out actions with
// schemas. Built-in tools, WASM plugins and process plugins all become Tools,
// so the turn loop, /call and the safety policy see one shape.
package tool

import (
	"context"
	"encoding/json"

	"github.com/depai/depai/sdk/wire"
)

// Effect says what kind of side effect a tool has; see wire.Effect.
type Effect = wire.Effect

// Effects, as sdk/wire defines them.
const (
	EffectNone     = wire.EffectNone
	EffectWrite    = wire.EffectWrite
	EffectActuator = wire.EffectActuator
	EffectPayment  = wire.EffectPayment
)

// Spec describes a tool. InputSchema and OutputSchema are JSON Schemas.
type Spec struct {
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"input_schema"`
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
	Effect       Effect          `json:"effect,omitempty"`
	Source       string          `json:"source,omitempty"` // "builtin" or the plugin's name
}

// Tool is one action. Call receives arguments already validated against
// Spec().InputSchema and returns a JSON result. Implementations are safe for
// concurrent use.
type Tool interface {
	Spec() Spec
	Call(ctx context.Context, args json.RawMessage) (json.RawMessage, error)
}

// Error is a tool failure the caller can act on: the same shape travels in
// the plugin envelope, so built-in and plugin tools fail alike.
type Error = wire.Error

// Error codes shared by every tool implementation.
const (
	CodeInvalidArgument = wire.CodeInvalidArgument
	CodeNotFound        = wire.CodeNotFound
	CodeDenied          = wire.CodeDenied
	CodeTimeout         = wire.CodeTimeout
	CodeUnavailable     = wire.CodeUnavailable
	CodeTooLarge        = wire.CodeTooLarge
	CodeCrashed         = wire.CodeCrashed
	CodeInternal        = wire.CodeInternal
)
