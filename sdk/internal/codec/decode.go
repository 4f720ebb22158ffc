package codec

import (
	"encoding"
	"encoding/base64"
	"errors"
	"math"
	"reflect"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Unmarshal decodes the JSON document data into the value v points to, as
// json.Unmarshal does (see the package comment for what it adds).
func Unmarshal(data []byte, v any) error { return unmarshal(data, v, false) }

// UnmarshalStrict is Unmarshal that also refuses what the JSON Schema that
// sdk/schema derives from v's type refuses: a struct field the type does
// not have (under any case), a required field (one without omitempty or
// omitzero) left out, null for a value that has no nil, and more items
// than a Go array holds. It is the check for calls the host did not
// validate.
func UnmarshalStrict(data []byte, v any) error { return unmarshal(data, v, true) }

func unmarshal(data []byte, v any, strict bool) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &InvalidUnmarshalError{reflect.TypeOf(v)}
	}
	// One pass that checks the syntax as it decodes: unlike encoding/json,
	// a document with a syntax error late in it may have set fields before
	// the error is found. Callers discard a value whose decoding failed.
	d := decoder{data: data, strict: strict}
	if err := d.value(rv); err != nil {
		return err
	}
	d.skipWS()
	if d.pos < len(d.data) {
		return d.syntax("invalid character " + strconv.QuoteRune(rune(d.data[d.pos])) + " after top-level value")
	}
	return nil
}

// InvalidUnmarshalError is a non-pointer or nil argument to Unmarshal.
type InvalidUnmarshalError struct{ Type reflect.Type }

func (e *InvalidUnmarshalError) Error() string {
	if e.Type == nil {
		return "json: Unmarshal(nil)"
	}
	if e.Type.Kind() != reflect.Pointer {
		return "json: Unmarshal(non-pointer " + e.Type.String() + ")"
	}
	return "json: Unmarshal(nil " + e.Type.String() + ")"
}

// SyntaxError is a document that is not valid JSON.
type SyntaxError struct {
	msg    string
	Offset int64
}

func (e *SyntaxError) Error() string { return e.msg }

// TypeError is a JSON value that does not fit the Go value it is decoded
// into; Field is the dotted path of struct fields to it.
type TypeError struct {
	Value string
	Type  reflect.Type
	Field string
	msg   string
}

func (e *TypeError) Error() string {
	if e.msg != "" {
		return "json: " + e.msg
	}
	if e.Field != "" {
		return "json: cannot unmarshal " + e.Value + " into Go struct field " + e.Field + " of type " + e.Type.String()
	}
	return "json: cannot unmarshal " + e.Value + " into Go value of type " + e.Type.String()
}

// maxNesting is encoding/json's bound on nesting.
const maxNesting = 10000

type decoder struct {
	data   []byte
	pos    int
	strict bool
	depth  int
	field  []string // path of struct fields, for errors
}

func (d *decoder) syntax(msg string) error {
	return &SyntaxError{msg: "json: " + msg + " at offset " + strconv.Itoa(d.pos), Offset: int64(d.pos)}
}

func (d *decoder) typeError(what string, t reflect.Type) error {
	e := &TypeError{Value: what, Type: t}
	for i, f := range d.field {
		if i > 0 {
			e.Field += "."
		}
		e.Field += f
	}
	return e
}

func (d *decoder) strictError(msg string) error {
	return &TypeError{msg: msg}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (d *decoder) skipWS() {
	for d.pos < len(d.data) && isSpace(d.data[d.pos]) {
		d.pos++
	}
}

// checkValid scans the whole document: exactly one value, with space
// around it.
func (d *decoder) checkValid() error {
	if err := d.skipValue(); err != nil {
		return err
	}
	d.skipWS()
	if d.pos < len(d.data) {
		return d.syntax("invalid character " + strconv.QuoteRune(rune(d.data[d.pos])) + " after top-level value")
	}
	return nil
}

// skipValue moves past one value, checking its syntax.
func (d *decoder) skipValue() error {
	d.skipWS()
	if d.pos >= len(d.data) {
		return d.syntax("unexpected end of JSON input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		if d.depth++; d.depth > maxNesting {
			return d.syntax("exceeded max depth")
		}
		d.pos++
		d.skipWS()
		if d.pos < len(d.data) && d.data[d.pos] == '}' {
			d.pos++
			d.depth--
			return nil
		}
		for {
			d.skipWS()
			if d.pos >= len(d.data) || d.data[d.pos] != '"' {
				return d.syntaxAt("looking for beginning of object key string")
			}
			if _, _, err := d.scanString(); err != nil {
				return err
			}
			d.skipWS()
			if d.pos >= len(d.data) || d.data[d.pos] != ':' {
				return d.syntaxAt("after object key")
			}
			d.pos++
			if err := d.skipValue(); err != nil {
				return err
			}
			d.skipWS()
			if d.pos < len(d.data) && d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.pos < len(d.data) && d.data[d.pos] == '}' {
				d.pos++
				d.depth--
				return nil
			}
			return d.syntaxAt("after object key:value pair")
		}
	case c == '[':
		if d.depth++; d.depth > maxNesting {
			return d.syntax("exceeded max depth")
		}
		d.pos++
		d.skipWS()
		if d.pos < len(d.data) && d.data[d.pos] == ']' {
			d.pos++
			d.depth--
			return nil
		}
		for {
			if err := d.skipValue(); err != nil {
				return err
			}
			d.skipWS()
			if d.pos < len(d.data) && d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.pos < len(d.data) && d.data[d.pos] == ']' {
				d.pos++
				d.depth--
				return nil
			}
			return d.syntaxAt("after array element")
		}
	case c == '"':
		_, _, err := d.scanString()
		return err
	case c == 't':
		return d.word("true")
	case c == 'f':
		return d.word("false")
	case c == 'n':
		return d.word("null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := d.scanNumber()
		return err
	}
	return d.syntaxAt("looking for beginning of value")
}

func (d *decoder) syntaxAt(ctx string) error {
	if d.pos >= len(d.data) {
		return d.syntax("unexpected end of JSON input")
	}
	return d.syntax("invalid character " + strconv.QuoteRune(rune(d.data[d.pos])) + " " + ctx)
}

func (d *decoder) word(w string) error {
	for i := range len(w) {
		if d.pos >= len(d.data) {
			return d.syntax("unexpected end of JSON input")
		}
		if d.data[d.pos] != w[i] {
			return d.syntaxAt("in literal " + w)
		}
		d.pos++
	}
	return nil
}

// scanNumber moves past a number and returns it.
func (d *decoder) scanNumber() ([]byte, error) {
	start := d.pos
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		return nil, d.syntaxAt("in numeric literal")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return nil, d.syntaxAt("after decimal point in numeric literal")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, d.syntaxAt("in exponent of numeric literal")
		}
	}
	return d.data[start:d.pos], nil
}

// scanString moves past a string and returns its raw content (between the
// quotes) and whether it needs unquoting.
func (d *decoder) scanString() (raw []byte, escaped bool, err error) {
	d.pos++
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			raw = d.data[start:d.pos]
			d.pos++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			d.pos++
			if d.pos >= len(d.data) {
				return nil, false, d.syntax("unexpected end of JSON input")
			}
			switch d.data[d.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.pos++
			case 'u':
				d.pos++
				for range 4 {
					if d.pos >= len(d.data) {
						return nil, false, d.syntax("unexpected end of JSON input")
					}
					if !isHex(d.data[d.pos]) {
						return nil, false, d.syntaxAt("in \\u hexadecimal character escape")
					}
					d.pos++
				}
			default:
				return nil, false, d.syntaxAt("in string escape code")
			}
		case c < 0x20:
			return nil, false, d.syntaxAt("in string literal")
		case c >= utf8.RuneSelf:
			// Invalid UTF-8 is replaced when unquoting, as encoding/json does.
			if r, size := utf8.DecodeRune(d.data[d.pos:]); r == utf8.RuneError && size == 1 {
				escaped = true
			}
			d.pos++
		default:
			d.pos++
		}
	}
	return nil, false, d.syntax("unexpected end of JSON input")
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// unquote resolves the escapes of a string scanString accepted.
func unquote(raw []byte, escaped bool) []byte {
	if !escaped {
		return raw
	}
	out := make([]byte, 0, len(raw)+2*utf8.UTFMax)
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			i++
			switch raw[i] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(raw[i+1:])
				i += 5
				if utf16.IsSurrogate(r) {
					// A valid pair is one rune; anything else is U+FFFD.
					if len(raw) >= i+6 && raw[i] == '\\' && raw[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(raw[i+2:])); dec != unicode.ReplacementChar {
							out = utf8.AppendRune(out, dec)
							i += 6
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				out = utf8.AppendRune(out, r)
				continue
			default: // " \ /
				out = append(out, raw[i])
			}
			i++
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			i += size
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}

func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// indirect is encoding/json's: it walks down v through pointers and
// interfaces holding pointers, allocating nil pointers, and stops at the
// first Unmarshaler or (unless decoding null) TextUnmarshaler.
func indirect(v reflect.Value, decodingNull bool, ti *typeInfo) (unmarshaler, encoding.TextUnmarshaler, reflect.Value) {
	if ti == nil {
		ti = infoOf(v.Type())
	}
	if !ti.indirect {
		return nil, nil, v
	}
	v0 := v
	haveAddr := false
	if v.Kind() != reflect.Pointer && v.Type().Name() != "" && v.CanAddr() {
		haveAddr = true
		v = v.Addr()
	}
	for {
		if v.Kind() == reflect.Interface && !v.IsNil() {
			e := v.Elem()
			if e.Kind() == reflect.Pointer && !e.IsNil() && (!decodingNull || e.Elem().Kind() == reflect.Pointer) {
				haveAddr = false
				v = e
				continue
			}
		}
		if v.Kind() != reflect.Pointer {
			break
		}
		if decodingNull && v.CanSet() {
			break
		}
		if v.Elem().Kind() == reflect.Interface && v.Elem().Elem().Equal(v) {
			v = v.Elem()
			break
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		if v.Type().NumMethod() > 0 && v.CanInterface() {
			if u, ok := v.Interface().(unmarshaler); ok {
				return u, nil, reflect.Value{}
			}
			if !decodingNull {
				if u, ok := v.Interface().(encoding.TextUnmarshaler); ok {
					return nil, u, reflect.Value{}
				}
			}
		}
		if haveAddr {
			v = v0
			haveAddr = false
		} else {
			v = v.Elem()
		}
	}
	return nil, nil, v
}

// value decodes the next value into v; an invalid v skips it.
func (d *decoder) value(v reflect.Value) error { return d.typed(v, nil) }

// typed decodes into v, whose type's info is ti (nil: look it up).
func (d *decoder) typed(v reflect.Value, ti *typeInfo) error {
	d.skipWS()
	if !v.IsValid() {
		return d.skipValue()
	}
	if d.pos >= len(d.data) {
		return d.syntax("unexpected end of JSON input")
	}
	start := d.pos
	switch d.data[d.pos] {
	case '{':
		return d.object(v, ti)
	case '[':
		return d.array(v, ti)
	case '"':
		raw, esc, err := d.scanString()
		if err != nil {
			return err
		}
		return d.scalar(d.data[start:d.pos], unquote(raw, esc), v, false, ti)
	}
	if err := d.skipValue(); err != nil {
		return err
	}
	return d.literal(d.data[start:d.pos], v, false, ti)
}

// open moves past the '{' or '[' at pos and any space after it, counting
// the depth; empty reports the closing byte right after it.
func (d *decoder) open(closing byte) (empty bool, err error) {
	if d.depth++; d.depth > maxNesting {
		return false, d.syntax("exceeded max depth")
	}
	d.pos++
	d.skipWS()
	if d.pos >= len(d.data) {
		return false, d.syntax("unexpected end of JSON input")
	}
	if d.data[d.pos] == closing {
		d.pos++
		d.depth--
		return true, nil
	}
	return false, nil
}

// next moves past the ',' or closing byte after a member; done reports the
// closing one.
func (d *decoder) next(closing byte, ctx string) (done bool, err error) {
	d.skipWS()
	if d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ',':
			d.pos++
			return false, nil
		case closing:
			d.pos++
			d.depth--
			return true, nil
		}
	}
	return false, d.syntaxAt(ctx)
}

// key reads an object key and the ':' after it.
func (d *decoder) key() ([]byte, error) {
	d.skipWS()
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, d.syntaxAt("looking for beginning of object key string")
	}
	raw, esc, err := d.scanString()
	if err != nil {
		return nil, err
	}
	d.skipWS()
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return nil, d.syntaxAt("after object key")
	}
	d.pos++
	return unquote(raw, esc), nil
}

func (d *decoder) raw(u unmarshaler) error {
	start := d.pos
	if err := d.skipValue(); err != nil {
		return err
	}
	return u.UnmarshalJSON(d.data[start:d.pos])
}

func (d *decoder) array(v reflect.Value, ti *typeInfo) error {
	u, ut, pv := indirect(v, false, ti)
	if u != nil {
		return d.raw(u)
	}
	if ut != nil {
		return d.typeError("array", v.Type())
	}
	ti = infoAfter(v, pv, ti)
	v = pv
	switch v.Kind() {
	case reflect.Interface:
		if v.NumMethod() == 0 {
			a, err := d.anyArray()
			if err != nil {
				return err
			}
			v.Set(reflect.ValueOf(a))
			return nil
		}
		return d.typeError("array", v.Type())
	case reflect.Array, reflect.Slice:
	default:
		return d.typeError("array", v.Type())
	}
	i := 0
	elem := ti.elemInfo(v.Type())
	empty, err := d.open(']')
	if err != nil {
		return err
	}
	for !empty {
		if v.Kind() == reflect.Slice {
			if i >= v.Cap() {
				// Doubling from 4: each reflect Grow costs a WASM guest
				// microseconds, and Grow(1) grows a short slice 1, 2, 4.
				v.Grow(max(4, v.Cap()))
			}
			if i >= v.Len() {
				v.SetLen(i + 1)
			}
		}
		if i < v.Len() {
			if err := d.typed(v.Index(i), elem); err != nil {
				return err
			}
		} else {
			if d.strict {
				return d.strictError("more than " + strconv.Itoa(v.Len()) + " items for " + v.Type().String())
			}
			if err := d.value(reflect.Value{}); err != nil {
				return err
			}
		}
		i++
		if empty, err = d.next(']', "after array element"); err != nil {
			return err
		}
	}
	if i < v.Len() {
		if v.Kind() == reflect.Array {
			if d.strict {
				return d.strictError(strconv.Itoa(i) + " items for " + v.Type().String() + ", which holds " + strconv.Itoa(v.Len()))
			}
			for ; i < v.Len(); i++ {
				v.Index(i).SetZero()
			}
		} else {
			v.SetLen(i)
		}
	}
	if i == 0 && v.Kind() == reflect.Slice {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
	}
	return nil
}

func (d *decoder) object(v reflect.Value, ti *typeInfo) error {
	u, ut, pv := indirect(v, false, ti)
	if u != nil {
		return d.raw(u)
	}
	if ut != nil {
		return d.typeError("object", v.Type())
	}
	ti = infoAfter(v, pv, ti)
	v = pv
	t := v.Type()
	if v.Kind() == reflect.Interface && v.NumMethod() == 0 {
		m, err := d.anyObject()
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(m))
		return nil
	}
	var fields *structFields
	var seen []bool
	switch v.Kind() {
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		default:
			if !reflect.PointerTo(t.Key()).Implements(textUnmarshalerType) {
				return d.typeError("object", t)
			}
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
	case reflect.Struct:
		fields = ti.structFields(t)
		if d.strict {
			seen = make([]bool, len(fields.list))
		}
	default:
		return d.typeError("object", t)
	}
	var mapElem reflect.Value
	empty, err := d.open('}')
	if err != nil {
		return err
	}
	for !empty {
		key, err := d.key()
		if err != nil {
			return err
		}
		if v.Kind() == reflect.Map {
			if !mapElem.IsValid() {
				mapElem = reflect.New(t.Elem()).Elem()
			} else {
				mapElem.SetZero()
			}
			if err := d.typed(mapElem, ti.elemInfo(t)); err != nil {
				return err
			}
			kv, err := d.mapKey(key, t)
			if err != nil {
				return err
			}
			if kv.IsValid() {
				v.SetMapIndex(kv, mapElem)
			}
		} else if err := d.structField(v, t, fields, seen, key); err != nil {
			return err
		}
		if empty, err = d.next('}', "after object key:value pair"); err != nil {
			return err
		}
	}
	return d.required(fields, seen, t)
}

func (d *decoder) required(fields *structFields, seen []bool, t reflect.Type) error {
	for i, ok := range seen {
		if !ok && fields.list[i].required {
			return d.strictError("missing property \"" + fields.list[i].name + "\" of " + t.String())
		}
	}
	return nil
}

func (d *decoder) structField(v reflect.Value, t reflect.Type, fields *structFields, seen []bool, key []byte) error {
	i, ok := fields.lookup(key)
	if !ok && !d.strict { // the schema's property names are exact
		i, ok = fields.byFolded[string(foldName(key))]
	}
	if !ok {
		if d.strict {
			return d.strictError("unknown property \"" + string(key) + "\" for " + t.String())
		}
		return d.skipValue()
	}
	f := &fields.list[i]
	if seen != nil {
		seen[i] = true
	}
	subv := v
	for _, idx := range f.index {
		if subv.Kind() == reflect.Pointer {
			if subv.IsNil() {
				if !subv.CanSet() {
					return &TypeError{msg: "cannot set embedded pointer to unexported struct: " + subv.Type().Elem().String()}
				}
				subv.Set(reflect.New(subv.Type().Elem()))
			}
			subv = subv.Elem()
		}
		subv = subv.Field(idx)
	}
	d.field = append(d.field, f.name)
	err := d.fieldValue(subv, f)
	d.field = d.field[:len(d.field)-1]
	return err
}

func (d *decoder) fieldValue(subv reflect.Value, f *field) error {
	if !f.quoted {
		return d.typed(subv, f.info)
	}
	// ",string": the value is a JSON string holding the literal (or null).
	d.skipWS()
	start := d.pos
	if err := d.skipValue(); err != nil {
		return err
	}
	item := d.data[start:d.pos]
	switch item[0] {
	case 'n':
		return d.literal(item, subv, false, f.info)
	case '"':
		raw := item[1 : len(item)-1]
		inner := unquote(raw, true)
		return d.literal(inner, subv, true, f.info)
	}
	return &TypeError{msg: "invalid use of ,string struct tag, trying to unmarshal unquoted value into " + subv.Type().String()}
}

func (d *decoder) mapKey(key []byte, t reflect.Type) (reflect.Value, error) {
	kt := t.Key()
	if reflect.PointerTo(kt).Implements(textUnmarshalerType) {
		kv := reflect.New(kt)
		if err := kv.Interface().(encoding.TextUnmarshaler).UnmarshalText(key); err != nil {
			return reflect.Value{}, err
		}
		return kv.Elem(), nil
	}
	switch kt.Kind() {
	case reflect.String:
		return reflect.ValueOf(string(key)).Convert(kt), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(string(key), 10, 64)
		if err != nil || reflect.Zero(kt).OverflowInt(n) {
			return reflect.Value{}, d.typeError("number "+string(key), kt)
		}
		return reflect.ValueOf(n).Convert(kt), nil
	default:
		n, err := strconv.ParseUint(string(key), 10, 64)
		if err != nil || reflect.Zero(kt).OverflowUint(n) {
			return reflect.Value{}, d.typeError("number "+string(key), kt)
		}
		return reflect.ValueOf(n).Convert(kt), nil
	}
}

var errQuoted = errors.New("json: invalid use of ,string struct tag")

// literal stores a scalar (null, bool, string, number). fromQuoted: item
// came from inside a ",string" string.
func (d *decoder) literal(item []byte, v reflect.Value, fromQuoted bool, ti *typeInfo) error {
	return d.scalar(item, nil, v, fromQuoted, ti)
}

// scalar is literal with unq, when item is a string, already unquoted
// (nil: unquote it here).
func (d *decoder) scalar(item, unq []byte, v reflect.Value, fromQuoted bool, ti *typeInfo) error {
	if len(item) == 0 {
		return errQuoted
	}
	isNull := item[0] == 'n'
	if isNull && d.strict && !fromQuoted {
		k := v
		if k.Kind() == reflect.Pointer && !k.CanSet() { // the top-level argument
			k = k.Elem()
		}
		switch k.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Interface:
		default:
			return d.strictError("null for " + v.Type().String() + pathSuffix(d.field))
		}
	}
	u, ut, pv := indirect(v, isNull, ti)
	if u != nil {
		return u.UnmarshalJSON(item)
	}
	if ut != nil {
		if item[0] != '"' {
			if fromQuoted {
				return errQuoted
			}
			what := "number"
			switch item[0] {
			case 'n':
				what = "null"
			case 't', 'f':
				what = "bool"
			}
			return d.typeError(what, v.Type())
		}
		s := unq
		if s == nil {
			if s = unquoteItem(item); s == nil {
				return errQuoted
			}
		}
		return ut.UnmarshalText(s)
	}
	ti = infoAfter(v, pv, ti)
	v = pv
	switch c := item[0]; c {
	case 'n':
		if fromQuoted && string(item) != "null" {
			return errQuoted
		}
		switch v.Kind() {
		case reflect.Interface, reflect.Pointer, reflect.Map, reflect.Slice:
			v.SetZero()
		}
		return nil
	case 't', 'f':
		b := c == 't'
		if fromQuoted && string(item) != "true" && string(item) != "false" {
			return errQuoted
		}
		switch v.Kind() {
		case reflect.Bool:
			v.SetBool(b)
		case reflect.Interface:
			if v.NumMethod() != 0 {
				return d.typeError("bool", v.Type())
			}
			v.Set(reflect.ValueOf(b))
		default:
			if fromQuoted {
				return errQuoted
			}
			return d.typeError("bool", v.Type())
		}
		return nil
	case '"':
		s := unq
		if s == nil {
			if s = unquoteItem(item); s == nil {
				return errQuoted
			}
		}
		switch v.Kind() {
		case reflect.Slice:
			if v.Type().Elem().Kind() != reflect.Uint8 {
				return d.typeError("string", v.Type())
			}
			b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
			n, err := base64.StdEncoding.Decode(b, s)
			if err != nil {
				return err
			}
			v.SetBytes(b[:n])
		case reflect.String:
			if ti.number && !validNumber(s) {
				return &TypeError{msg: "invalid number literal, trying to unmarshal " + strconv.Quote(string(item)) + " into Number"}
			}
			v.SetString(string(s))
		case reflect.Interface:
			if v.NumMethod() != 0 {
				return d.typeError("string", v.Type())
			}
			v.Set(reflect.ValueOf(string(s)))
		default:
			return d.typeError("string", v.Type())
		}
		return nil
	}
	if c := item[0]; c != '-' && (c < '0' || c > '9') {
		return errQuoted
	}
	s := string(item)
	switch v.Kind() {
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return d.typeError("number", v.Type())
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return d.typeError("number "+s, v.Type())
		}
		v.Set(reflect.ValueOf(f))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			var ok bool
			if n, ok = integral(s, fromQuoted); !ok {
				return d.typeError("number "+s, v.Type())
			}
		}
		if v.OverflowInt(n) {
			return d.typeError("number "+s, v.Type())
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			i, ok := integral(s, fromQuoted)
			if !ok || i < 0 {
				return d.typeError("number "+s, v.Type())
			}
			n = uint64(i)
		}
		if v.OverflowUint(n) {
			return d.typeError("number "+s, v.Type())
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil || v.OverflowFloat(f) {
			return d.typeError("number "+s, v.Type())
		}
		v.SetFloat(f)
	case reflect.String:
		if ti.number {
			if fromQuoted && !validNumber(item) {
				return errQuoted
			}
			v.SetString(s)
			return nil
		}
		if fromQuoted {
			return errQuoted
		}
		return d.typeError("number", v.Type())
	default:
		if fromQuoted {
			return errQuoted
		}
		return d.typeError("number", v.Type())
	}
	return nil
}

// integral reads a number with a fraction or exponent whose value is a
// whole int64 (1.0, 2e3): JSON Schema's "integer", which the host's check
// admits for an integer field, while encoding/json would refuse it.
func integral(s string, fromQuoted bool) (int64, bool) {
	if fromQuoted {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

func unquoteItem(item []byte) []byte {
	if len(item) < 2 || item[0] != '"' || item[len(item)-1] != '"' {
		return nil
	}
	d := decoder{data: item}
	raw, esc, err := d.scanString()
	if err != nil || d.pos != len(item) {
		return nil
	}
	return unquote(raw, esc)
}

func validNumber(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	d := decoder{data: s}
	if s[0] != '-' && (s[0] < '0' || s[0] > '9') {
		return false
	}
	_, err := d.scanNumber()
	return err == nil && d.pos == len(s)
}

func pathSuffix(path []string) string {
	if len(path) == 0 {
		return ""
	}
	s := " at "
	for i, p := range path {
		if i > 0 {
			s += "."
		}
		s += p
	}
	return s
}

// anyValue decodes the next value as encoding/json does into an empty
// interface: map[string]any, []any, float64, string, bool or nil.
func (d *decoder) anyValue() (any, error) {
	d.skipWS()
	if d.pos >= len(d.data) {
		return nil, d.syntax("unexpected end of JSON input")
	}
	switch d.data[d.pos] {
	case '{':
		return d.anyObject()
	case '[':
		return d.anyArray()
	case '"':
		raw, esc, err := d.scanString()
		if err != nil {
			return nil, err
		}
		return string(unquote(raw, esc)), nil
	}
	start := d.pos
	if err := d.skipValue(); err != nil {
		return nil, err
	}
	switch item := d.data[start:d.pos]; item[0] {
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	default:
		f, err := strconv.ParseFloat(string(item), 64)
		if err != nil {
			return nil, &TypeError{Value: "number " + string(item), Type: reflect.TypeFor[float64]()}
		}
		return f, nil
	}
}

func (d *decoder) anyArray() ([]any, error) {
	a := []any{}
	empty, err := d.open(']')
	for err == nil && !empty {
		var x any
		if x, err = d.anyValue(); err != nil {
			break
		}
		a = append(a, x)
		empty, err = d.next(']', "after array element")
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (d *decoder) anyObject() (map[string]any, error) {
	m := map[string]any{}
	empty, err := d.open('}')
	for err == nil && !empty {
		var key []byte
		if key, err = d.key(); err != nil {
			break
		}
		var x any
		if x, err = d.anyValue(); err != nil {
			break
		}
		m[string(key)] = x
		empty, err = d.next('}', "after object key:value pair")
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// compact appends src, a MarshalJSON result, without insignificant space
// and HTML-escaped, as encoding/json does; src must be one JSON value.
func compact(dst, src []byte) ([]byte, error) {
	d := decoder{data: src}
	if err := d.checkValid(); err != nil {
		return dst, err
	}
	inString := false
	start := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !inString && isSpace(c) {
			dst = append(dst, src[start:i]...)
			start = i + 1
			continue
		}
		switch {
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[src[i+2]&0xF])
			start = i + 3
			i += 2
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		}
	}
	return append(dst, src[start:]...), nil
}

// foldName is encoding/json's case folding of field names.
func foldName(in []byte) []byte {
	var arr [32]byte
	out := arr[:0]
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		out = utf8.AppendRune(out, unicode.ToUpper(unicode.ToLower(r)))
		i += n
	}
	return out
}

func isLetterOrDigit(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) }
