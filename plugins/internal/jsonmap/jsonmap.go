// Package jsonmap maps fields of a JSON document to named numeric readings
// with units — the mapping the mqtt plugin applies to payloads and the feed
// plugin to API answers. A document that is not JSON, lacks a required
// field or has a non-number where a number is mapped yields an *Error of a
// kind the plugins count, and no values at all.
package jsonmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Field maps one JSON value to a reading.
type Field struct {
	Name string `json:"name"` // the reading's name, e.g. battery_voltage
	Path string `json:"path"` // dot-separated path into the document, e.g. battery.voltage; "" for a bare number
	Unit string `json:"unit,omitempty"`
	// Optional fields missing from a document are not an error.
	Optional bool `json:"optional,omitempty"`
}

// Value is one mapped value.
type Value struct {
	Name  string
	Value float64
	Unit  string
}

// Kind classifies a refused document.
type Kind string

// Refusal kinds.
const (
	KindNotJSON      Kind = "not_json"
	KindMissingField Kind = "missing_field"
	KindNotNumber    Kind = "not_number"
)

// Error is a document that did not map.
type Error struct {
	Kind  Kind
	Field string // the path, when about one field
	Msg   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("field %s: %s", e.Field, e.Msg)
	}
	return e.Msg
}

// KindOf returns err's kind, or "" when err holds no *Error.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return ""
}

// Decode maps doc by fields. It is all or nothing: if a required field is
// missing or not a number, no value is returned, because half a document
// may pair one moment's voltage with another moment's current.
func Decode(doc []byte, fields []Field) ([]Value, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		msg := "not JSON"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, &Error{Kind: KindNotJSON, Msg: msg}
	}
	out := make([]Value, 0, len(fields))
	for _, f := range fields {
		x, ok := Lookup(v, f.Path)
		if !ok {
			if f.Optional {
				continue
			}
			return nil, &Error{Kind: KindMissingField, Field: f.Path, Msg: "missing"}
		}
		n, err := number(x)
		if err != nil {
			return nil, &Error{Kind: KindNotNumber, Field: f.Path, Msg: err.Error()}
		}
		out = append(out, Value{Name: f.Name, Value: n, Unit: f.Unit})
	}
	return out, nil
}

// Lookup follows a dot-separated path into a document decoded with
// UseNumber: object keys, and decimal indexes into arrays ("items.0.count");
// "" is the document itself.
func Lookup(doc any, path string) (any, bool) {
	if path == "" {
		return doc, true
	}
	for _, k := range strings.Split(path, ".") {
		switch v := doc.(type) {
		case map[string]any:
			var ok bool
			if doc, ok = v[k]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			doc = v[i]
		default:
			return nil, false
		}
	}
	return doc, true
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%s out of range", x)
		}
		return f, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case nil:
		return 0, errors.New("null; want a number")
	}
	return 0, fmt.Errorf("%T; want a number", v)
}

// ValidFields checks a mapping: every field named, names unique.
func ValidFields(fields []Field) error {
	seen := map[string]bool{}
	for i, f := range fields {
		if f.Name == "" {
			return fmt.Errorf("fields[%d].name: empty", i)
		}
		if seen[f.Name] {
			return fmt.Errorf("fields[%d].name %q: used twice", i, f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}
