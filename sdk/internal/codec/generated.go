package codec

import (
	"math"
	"reflect"
	"strconv"
	"sync"

	"github.com/depai/depai/internal/jsonstr"
)

// What code generated for a plugin's tool types (sdk/internal/codecgen)
// decodes and encodes with: this package's scanner, without reflection.
// Generated code decides only what it can decide exactly; every method
// here reports ok false for anything else (a syntax or type error, a key
// it does not know, a number it would have to convert), and the caller
// then decodes or encodes again with Unmarshal or Marshal, whose result —
// value or error — is the answer. So a generated decoder that succeeds
// agrees with Unmarshal, and one that fails costs a second pass.

// Decoder reads one JSON document for generated code.
type Decoder struct{ d decoder }

// NewDecoder reads data; strict is UnmarshalStrict's mode.
func NewDecoder(data []byte, strict bool) Decoder {
	return Decoder{decoder{data: data, strict: strict}}
}

// Strict reports UnmarshalStrict's mode: a required field left out fails.
func (d *Decoder) Strict() bool { return d.d.strict }

func (d *Decoder) peek() byte {
	d.d.skipWS()
	if d.d.pos >= len(d.d.data) {
		return 0
	}
	return d.d.data[d.d.pos]
}

// Null consumes a null if one is next.
func (d *Decoder) Null() (null, ok bool) {
	if d.peek() != 'n' {
		return false, true
	}
	return true, d.d.word("null") == nil
}

// Object moves into an object; empty reports "{}".
func (d *Decoder) Object() (empty, ok bool) {
	if d.peek() != '{' {
		return false, false
	}
	empty, err := d.d.open('}')
	return empty, err == nil
}

// Key reads an object key and its colon.
func (d *Decoder) Key() ([]byte, bool) {
	k, err := d.d.key()
	return k, err == nil
}

// NextMember moves past the comma or the closing brace after a member.
func (d *Decoder) NextMember() (done, ok bool) {
	done, err := d.d.next('}', "")
	return done, err == nil
}

// Array moves into an array; empty reports "[]".
func (d *Decoder) Array() (empty, ok bool) {
	if d.peek() != '[' {
		return false, false
	}
	empty, err := d.d.open(']')
	return empty, err == nil
}

// NextItem moves past the comma or the closing bracket after an item.
func (d *Decoder) NextItem() (done, ok bool) {
	done, err := d.d.next(']', "")
	return done, err == nil
}

// String reads a string.
func (d *Decoder) String() (string, bool) {
	if d.peek() != '"' {
		return "", false
	}
	raw, esc, err := d.d.scanString()
	if err != nil {
		return "", false
	}
	return string(unquote(raw, esc)), true
}

// Bool reads true or false.
func (d *Decoder) Bool() (v, ok bool) {
	switch d.peek() {
	case 't':
		return true, d.d.word("true") == nil
	case 'f':
		return false, d.d.word("false") == nil
	}
	return false, false
}

func (d *Decoder) number() (string, bool) {
	if c := d.peek(); c != '-' && (c < '0' || c > '9') {
		return "", false
	}
	n, err := d.d.scanNumber()
	return string(n), err == nil
}

// Int reads an integer literal that fits bits. A whole number written
// with a fraction or exponent (which Unmarshal admits) is left to it.
func (d *Decoder) Int(bits int) (int64, bool) {
	s, ok := d.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, bits)
	return n, err == nil
}

// Uint reads an unsigned integer literal that fits bits.
func (d *Decoder) Uint(bits int) (uint64, bool) {
	s, ok := d.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, bits)
	return n, err == nil
}

// Float reads a number that a float of bits holds.
func (d *Decoder) Float(bits int) (float64, bool) {
	s, ok := d.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, bits)
	return f, err == nil
}

// End reports that nothing but space follows the value.
func (d *Decoder) End() bool { return d.peek() == 0 && d.d.pos == len(d.d.data) }

// AppendString appends s as Marshal encodes a string.
func AppendString(dst []byte, s string) []byte { return jsonstr.Append(dst, s, true) }

// AppendInt appends an integer.
func AppendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

// AppendUint appends an unsigned integer.
func AppendUint(dst []byte, n uint64) []byte { return strconv.AppendUint(dst, n, 10) }

// AppendFloat appends a float of bits as Marshal does; NaN and the
// infinities, which Marshal refuses, are not ok.
func AppendFloat(dst []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	e := encoder{buf: dst}
	_ = e.float(f, bits, false)
	return e.buf, true
}

// MaxGeneratedDepth bounds the nesting generated encoders follow, below
// Marshal's cycle bound, so a cycle is Marshal's to report.
const MaxGeneratedDepth = maxDepth / 2

// Generated codecs by tool name, registered by the generated code's
// init and looked up by the SDK on a tool's first call (init order
// between the plugin's files is not the SDK's to choose).
var generated sync.Map // tool name → [2]any{decode, encode}

// Register records the generated decoder and encoder of a tool's input
// and output (either may be nil): a func([]byte, bool, *In) bool and a
// func([]byte, *Out) ([]byte, bool).
func Register(tool string, decode, encode any) { generated.Store(tool, [2]any{decode, encode}) }

// Generated returns what Register recorded for tool.
func Generated(tool string) (decode, encode any) {
	v, ok := generated.Load(tool)
	if !ok {
		return nil, nil
	}
	p := v.([2]any)
	return p[0], p[1]
}

// Field is a struct field as Marshal and Unmarshal see it, for the
// generator.
type Field struct {
	Name      string       // its JSON name
	Index     []int        // the Go field, through embedded structs
	Type      reflect.Type // the Go field's
	OmitEmpty bool
	OmitZero  bool
	Quoted    bool // ",string"
	Required  bool // what UnmarshalStrict requires
}

// Fields lists t's fields in the order Marshal writes them.
func Fields(t reflect.Type) []Field {
	fs := fieldsOf(t).list
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = Field{Name: f.name, Index: f.index, Type: t.FieldByIndex(f.index).Type, OmitEmpty: f.omitEmpty, OmitZero: f.omitZero, Quoted: f.quoted, Required: f.required}
	}
	return out
}

// Custom reports whether t or *t has its own JSON or text encoding or
// decoding, or is json.Number: generated code leaves such types to the
// reflective codec.
func Custom(t reflect.Type) bool {
	i := infoOf(t)
	if i.marshal || i.ptrMarshal || i.text || i.ptrText || i.number {
		return true
	}
	p := reflect.PointerTo(t)
	return p.Implements(unmarshalerType) || p.Implements(textUnmarshalerType)
}
