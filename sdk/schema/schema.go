// Package schema derives JSON Schemas from Go types and validates JSON
// documents against them. Tool inputs and outputs are described with it on
// both sides of the plugin boundary, so the schema the model sees is the one
// arguments are checked against.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/google/jsonschema-go/jsonschema"
)

// Schema is a resolved JSON Schema, ready to validate documents. It is
// immutable and safe for concurrent use.
type Schema struct {
	raw      json.RawMessage
	resolved *jsonschema.Resolved
	fast     *fastCheck // nil: every document goes to resolved
}

// For derives the schema of T. Struct fields become properties named by
// their json tags; fields without omitempty/omitzero are required; a
// `jsonschema:"..."` tag is the property's description.
func For[T any]() (*Schema, error) {
	s, err := jsonschema.For[T](&jsonschema.ForOptions{TypeSchemas: typeSchemas})
	if err != nil {
		return nil, fmt.Errorf("schema: derive from %T: %w", *new(T), err)
	}
	return fromSchema(s)
}

// typeSchemas overrides inference for types whose Go shape is not their JSON
// shape: json.RawMessage is a []byte but holds any JSON value.
var typeSchemas = map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[json.RawMessage](): {},
}

// Parse reads a JSON Schema document.
func Parse(raw []byte) (*Schema, error) {
	var s jsonschema.Schema
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("schema: parse: %w", err)
	}
	return fromSchema(&s)
}

func fromSchema(s *jsonschema.Schema) (*Schema, error) {
	resolved, err := s.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("schema: resolve: %w", err)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("schema: encode: %w", err)
	}
	return &Schema{raw: raw, resolved: resolved, fast: newFastCheck(raw)}, nil
}

// JSON returns the schema document.
func (s *Schema) JSON() json.RawMessage { return s.raw }

// Validate checks a JSON document against the schema. The error says what is
// wrong in words a model can act on.
func (s *Schema) Validate(doc []byte) error {
	if len(bytes.TrimSpace(doc)) == 0 {
		doc = []byte("{}")
	}
	if s.fast != nil && s.fast.valid(doc) {
		return nil
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if err := s.resolved.Validate(v); err != nil {
		return fmt.Errorf("does not match the schema: %w", err)
	}
	return nil
}
