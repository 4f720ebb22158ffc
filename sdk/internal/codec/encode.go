// Package codec encodes and decodes the JSON a plugin's handlers take and
// return, without encoding/json. In a WASM guest encoding/json is most of
// what a call costs (its scanner, its reflection caches and their
// allocations run in interpreted-speed Go-on-WASM code) and 1.4 MB of the
// module, which wazero validates and decodes at every start; this codec is
// a direct, single-pass reflection walk that links only reflect, strconv and
// unicode/utf8.
//
// Its contract is encoding/json's: Marshal's output is byte for byte what
// json.Marshal produces for the same value (HTML-safe escaping, sorted map
// keys, Marshaler and TextMarshaler output, ",omitempty", ",omitzero" and
// ",string" options, embedded-field rules), and Unmarshal decodes every
// document json.Unmarshal decodes into the same value. Unmarshal also
// accepts integral numbers written with a fraction or exponent (1.0, 1e2)
// for integer fields, since the JSON Schema "integer" the host checks admits
// them. In strict mode — for calls the host did not check — it also refuses
// what the schema derived from the type (sdk/schema) refuses: unknown or
// missing required struct fields and null where the type has no nil. The
// fuzz tests hold it to encoding/json.
package codec

import (
	"encoding"
	"encoding/base64"
	"errors"
	"github.com/depai/depai/internal/jsonstr"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The interfaces encoding/json honours, declared here so that using them
// does not link encoding/json.
type (
	marshaler interface {
		MarshalJSON() ([]byte, error)
	}
	unmarshaler interface {
		UnmarshalJSON([]byte) error
	}
)

var (
	marshalerType       = reflect.TypeFor[marshaler]()
	unmarshalerType     = reflect.TypeFor[unmarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// Marshal returns the JSON encoding of v, as json.Marshal does.
func Marshal(v any) ([]byte, error) {
	return Append(make([]byte, 0, 128), v)
}

// Append appends the JSON encoding of v to dst.
func Append(dst []byte, v any) ([]byte, error) {
	e := encoder{buf: dst}
	if err := e.value(reflect.ValueOf(v), false); err != nil {
		return dst, err
	}
	return e.buf, nil
}

type encoder struct {
	buf   []byte
	depth int
}

// maxDepth bounds nesting, where encoding/json detects cycles: a value that
// deep is a cycle for every practical purpose.
const maxDepth = 1000

var errCycle = errors.New("json: unsupported value: encountered a cycle or a value nested more than 1000 deep")

func (e *encoder) value(v reflect.Value, quoted bool) error { return e.typed(v, nil, quoted) }

// typed encodes v, whose type's info is ti (nil: look it up).
func (e *encoder) typed(v reflect.Value, ti *typeInfo, quoted bool) error {
	if !v.IsValid() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	t := v.Type()
	if ti == nil {
		ti = infoOf(t)
	}
	if t.Kind() != reflect.Pointer || !v.IsNil() {
		if done, err := e.custom(v, t, ti); done {
			return err
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		if quoted {
			e.buf = append(e.buf, '"')
		}
		e.buf = strconv.AppendBool(e.buf, v.Bool())
		if quoted {
			e.buf = append(e.buf, '"')
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if quoted {
			e.buf = append(e.buf, '"')
		}
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
		if quoted {
			e.buf = append(e.buf, '"')
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if quoted {
			e.buf = append(e.buf, '"')
		}
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
		if quoted {
			e.buf = append(e.buf, '"')
		}
	case reflect.Float32, reflect.Float64:
		return e.float(v.Float(), t.Bits(), quoted)
	case reflect.String:
		if ti.number {
			// json.Number is written as the number it holds.
			n := v.String()
			if n == "" {
				n = "0"
			}
			if !validNumber([]byte(n)) {
				return &UnsupportedValueError{Str: "invalid number literal " + strconv.Quote(n)}
			}
			if quoted {
				e.buf = append(e.buf, '"')
			}
			e.buf = append(e.buf, n...)
			if quoted {
				e.buf = append(e.buf, '"')
			}
			return nil
		}
		if quoted {
			// ",string" on a string: the JSON string of its JSON string.
			inner := jsonstr.Append(nil, v.String(), true)
			e.buf = jsonstr.Append(e.buf, string(inner), true)
			return nil
		}
		e.buf = jsonstr.Append(e.buf, v.String(), true)
	case reflect.Interface:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.nested(v.Elem())
	case reflect.Pointer:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		// ",string" reaches through a pointer, as in encoding/json.
		if e.depth++; e.depth > maxDepth {
			return errCycle
		}
		err := e.value(v.Elem(), quoted)
		e.depth--
		return err
	case reflect.Struct:
		return e.object(v, t, ti)
	case reflect.Map:
		return e.mapValue(v, t)
	case reflect.Slice:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			p := reflect.PointerTo(t.Elem())
			if !p.Implements(marshalerType) && !p.Implements(textMarshalerType) {
				e.buf = append(e.buf, '"')
				e.buf = base64.StdEncoding.AppendEncode(e.buf, v.Bytes())
				e.buf = append(e.buf, '"')
				return nil
			}
		}
		return e.array(v, ti)
	case reflect.Array:
		return e.array(v, ti)
	default:
		return &UnsupportedTypeError{Type: t}
	}
	return nil
}

func (e *encoder) nested(v reflect.Value) error {
	if e.depth++; e.depth > maxDepth {
		return errCycle
	}
	err := e.value(v, false)
	e.depth--
	return err
}

// typeInfo is what the codec asks of a type on every value, computed once:
// reflect's Implements walks method tables.
type typeInfo struct {
	marshal, ptrMarshal, text, ptrText bool // encoding: (*T) has MarshalJSON, MarshalText
	// decode: a value of the type may reach an Unmarshaler or
	// TextUnmarshaler (see indirect), so decoding goes through indirect.
	indirect bool
	number   bool // json.Number

	// Filled in on first use: the element type's info (pointers, slices,
	// arrays, maps) and a struct's fields.
	elem   atomic.Pointer[typeInfo]
	fields atomic.Pointer[structFields]
}

// elemInfo is the info of t.Elem(), t being the type of i.
func (i *typeInfo) elemInfo(t reflect.Type) *typeInfo {
	if e := i.elem.Load(); e != nil {
		return e
	}
	e := infoOf(t.Elem())
	i.elem.Store(e)
	return e
}

// structFields is t's fields, t being the struct type of i.
func (i *typeInfo) structFields(t reflect.Type) *structFields {
	if f := i.fields.Load(); f != nil {
		return f
	}
	f := fieldsOf(t)
	i.fields.Store(f)
	return f
}

// infoAfter is the info of pv, the value indirect reached from v, whose
// info is ti (nil: unknown).
func infoAfter(v, pv reflect.Value, ti *typeInfo) *typeInfo {
	if ti != nil {
		if pv.Type() == v.Type() {
			return ti
		}
		if v.Kind() == reflect.Pointer && pv.Type() == v.Type().Elem() {
			return ti.elemInfo(v.Type())
		}
	}
	return infoOf(pv.Type())
}

var infoCache sync.Map // reflect.Type → *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if i, ok := infoCache.Load(t); ok {
		return i.(*typeInfo)
	}
	i := &typeInfo{
		marshal: t.Implements(marshalerType),
		text:    t.Implements(textMarshalerType),
		number:  t.Name() == "Number" && t.PkgPath() == "encoding/json",
	}
	if t.Kind() != reflect.Pointer {
		p := reflect.PointerTo(t)
		i.ptrMarshal = p.Implements(marshalerType)
		i.ptrText = p.Implements(textMarshalerType)
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		i.indirect = true
	default:
		p := reflect.PointerTo(t)
		i.indirect = t.NumMethod() > 0 || p.Implements(unmarshalerType) || p.Implements(textUnmarshalerType)
	}
	v, _ := infoCache.LoadOrStore(t, i)
	return v.(*typeInfo)
}

// custom encodes v through its MarshalJSON or MarshalText, as encoding/json
// does: a pointer-receiver method is used when v is addressable.
func (e *encoder) custom(v reflect.Value, t reflect.Type, i *typeInfo) (bool, error) {
	useAddr := t.Kind() != reflect.Pointer && v.CanAddr()
	switch {
	case i.marshal:
		return true, e.marshalJSON(v, t)
	case useAddr && i.ptrMarshal:
		return true, e.marshalJSON(v.Addr(), t)
	case i.text:
		return true, e.marshalText(v, t)
	case useAddr && i.ptrText:
		return true, e.marshalText(v.Addr(), t)
	}
	return false, nil
}

func (e *encoder) marshalJSON(v reflect.Value, t reflect.Type) error {
	if v.Kind() == reflect.Interface && v.IsNil() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	b, err := v.Interface().(marshaler).MarshalJSON()
	if err != nil {
		return &MarshalerError{Type: t, Err: err, fn: "MarshalJSON"}
	}
	out, err := compact(e.buf, b)
	if err != nil {
		return &MarshalerError{Type: t, Err: err, fn: "MarshalJSON"}
	}
	e.buf = out
	return nil
}

func (e *encoder) marshalText(v reflect.Value, t reflect.Type) error {
	if v.Kind() == reflect.Interface && v.IsNil() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
	if err != nil {
		return &MarshalerError{Type: t, Err: err, fn: "MarshalText"}
	}
	e.buf = jsonstr.Append(e.buf, string(b), true)
	return nil
}

func (e *encoder) float(f float64, bits int, quoted bool) error {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return &UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, bits)}
	}
	if quoted {
		e.buf = append(e.buf, '"')
	}
	// encoding/json's choice: ES6 number formatting.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(e.buf)
		if n >= 4 && e.buf[n-4] == 'e' && e.buf[n-3] == '-' && e.buf[n-2] == '0' {
			e.buf[n-2] = e.buf[n-1]
			e.buf = e.buf[:n-1]
		}
	}
	if quoted {
		e.buf = append(e.buf, '"')
	}
	return nil
}

func (e *encoder) array(v reflect.Value, ati *typeInfo) error {
	if e.depth++; e.depth > maxDepth {
		return errCycle
	}
	e.buf = append(e.buf, '[')
	ti := ati.elemInfo(v.Type())
	for i := range v.Len() {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.typed(v.Index(i), ti, false); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, ']')
	e.depth--
	return nil
}

func (e *encoder) object(v reflect.Value, t reflect.Type, ti *typeInfo) error {
	if e.depth++; e.depth > maxDepth {
		return errCycle
	}
	e.buf = append(e.buf, '{')
	first := true
	fs := ti.structFields(t).list
fields:
	for i := range fs {
		f := &fs[i]
		fv := v
		for _, idx := range f.index {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue fields
				}
				fv = fv.Elem()
			}
			fv = fv.Field(idx)
		}
		if f.omitEmpty && isEmpty(fv) || f.omitZero && isZero(fv) {
			continue
		}
		if !first {
			e.buf = append(e.buf, ',')
		}
		first = false
		e.buf = append(e.buf, f.nameJSON...)
		if err := e.typed(fv, f.info, f.quoted); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	e.depth--
	return nil
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

type isZeroer interface{ IsZero() bool }

var isZeroerType = reflect.TypeFor[isZeroer]()

// isZero is ",omitzero": the type's IsZero method when it has one (a nil
// pointer counts as zero), else the zero value.
func isZero(v reflect.Value) bool {
	t := v.Type()
	switch {
	case t.Implements(isZeroerType):
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return v.Interface().(isZeroer).IsZero()
	case t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(isZeroerType):
		if v.CanAddr() {
			return v.Addr().Interface().(isZeroer).IsZero()
		}
		// As encoding/json: copy into an addressable value.
		p := reflect.New(t)
		p.Elem().Set(v)
		return p.Interface().(isZeroer).IsZero()
	}
	return v.IsZero()
}

type mapEntry struct {
	key string
	v   reflect.Value
}

func (e *encoder) mapValue(v reflect.Value, t reflect.Type) error {
	if v.IsNil() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	kt := t.Key()
	if kt.Kind() != reflect.String && !kt.Implements(textMarshalerType) && !isIntKind(kt.Kind()) {
		return &UnsupportedTypeError{Type: t}
	}
	if e.depth++; e.depth > maxDepth {
		return errCycle
	}
	entries := make([]mapEntry, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		k, err := keyName(it.Key())
		if err != nil {
			return err
		}
		entries = append(entries, mapEntry{k, it.Value()})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	e.buf = append(e.buf, '{')
	for i, en := range entries {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = jsonstr.Append(e.buf, en.key, true)
		e.buf = append(e.buf, ':')
		if err := e.value(en.v, false); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	e.depth--
	return nil
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

func keyName(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		if k.Kind() == reflect.Pointer && k.IsNil() {
			return "", nil
		}
		b, err := tm.MarshalText()
		return string(b), err
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	default:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
}

const hex = "0123456789abcdef"

// field is a struct field as JSON sees it.
type field struct {
	name      string
	nameJSON  []byte // "name":
	index     []int
	typ       reflect.Type
	tagged    bool
	omitEmpty bool
	omitZero  bool
	quoted    bool
	required  bool      // what sdk/schema's derived schema requires
	info      *typeInfo // of the field's own type
}

// lookup finds the field named key exactly: a scan for the few fields of
// most structs, which beats hashing (in a WASM guest by far).
func (sf *structFields) lookup(key []byte) (int, bool) {
	if len(sf.list) > 16 {
		i, ok := sf.byName[string(key)]
		return i, ok
	}
	for i := range sf.list {
		if sf.list[i].name == string(key) {
			return i, true
		}
	}
	return 0, false
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

type structFields struct {
	list     []field
	byName   map[string]int
	byFolded map[string]int // the first field in index order of each folded name
}

var fieldCache sync.Map // reflect.Type → *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f, _ := fieldCache.LoadOrStore(t, typeFields(t))
	return f.(*structFields)
}

// typeFields lists the fields JSON encodes for struct type t, with
// encoding/json's rules: exported fields and embedded structs, breadth
// first; of fields with the same name the shallowest wins, among those a
// tagged one, and a tie hides them all.
func typeFields(t reflect.Type) *structFields {
	type queued struct {
		typ   reflect.Type
		index []int
	}
	current := []queued{}
	next := []queued{{typ: t}}
	count := map[reflect.Type]int{}
	nextCount := map[reflect.Type]int{}
	visited := map[reflect.Type]bool{}
	var fields []field
	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, q := range current {
			if visited[q.typ] {
				continue
			}
			visited[q.typ] = true
			for i := range q.typ.NumField() {
				sf := q.typ.Field(i)
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !validTag(name) {
					name = ""
				}
				index := make([]int, len(q.index)+1)
				copy(index, q.index)
				index[len(q.index)] = i
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				quoted := false
				if hasOpt(opts, "string") {
					switch ft.Kind() {
					case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64, reflect.String:
						quoted = true
					}
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					tagged := name != ""
					if name == "" {
						name = sf.Name
					}
					f := field{
						name: name, index: index, typ: ft, tagged: tagged,
						omitEmpty: hasOpt(opts, "omitempty"), omitZero: hasOpt(opts, "omitzero"),
						quoted: quoted,
					}
					f.required = !f.omitEmpty && !f.omitZero
					f.info = infoOf(sf.Type)
					fields = append(fields, f)
					if count[q.typ] > 1 {
						// Two copies at this depth annihilate each other;
						// one more keeps the name ambiguous.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, queued{typ: ft, index: index})
				}
			}
		}
	}
	// sort rather than slices: each instantiation of slices' generic sorts
	// would add kilobytes to every WASM guest.
	sort.SliceStable(fields, func(i, j int) bool {
		a, b := &fields[i], &fields[j]
		if a.name != b.name {
			return a.name < b.name
		}
		if len(a.index) != len(b.index) {
			return len(a.index) < len(b.index)
		}
		if a.tagged != b.tagged {
			return a.tagged
		}
		return compareIndex(a.index, b.index) < 0
	})
	out := fields[:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		if j-i == 1 {
			out = append(out, fields[i])
		} else if dominant, ok := dominantField(fields[i:j]); ok {
			out = append(out, dominant)
		}
		i = j
	}
	fields = out
	sort.Slice(fields, func(i, j int) bool { return compareIndex(fields[i].index, fields[j].index) < 0 })
	sf := &structFields{list: fields, byName: make(map[string]int, len(fields)), byFolded: make(map[string]int, len(fields))}
	for i := range fields {
		f := &fields[i]
		f.nameJSON = append(jsonstr.Append(nil, f.name, true), ':')
		sf.byName[f.name] = i
		if k := string(foldName([]byte(f.name))); !hasKey(sf.byFolded, k) {
			sf.byFolded[k] = i
		}
	}
	return sf
}

func compareIndex(a, b []int) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] - b[i]
		}
	}
	return len(a) - len(b)
}

func dominantField(fs []field) (field, bool) {
	if len(fs) > 1 && len(fs[0].index) == len(fs[1].index) && fs[0].tagged == fs[1].tagged {
		return field{}, false
	}
	return fs[0], true
}

func hasOpt(opts, name string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == name {
			return true
		}
	}
	return false
}

func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !isLetterOrDigit(c):
			return false
		}
	}
	return true
}

// UnsupportedTypeError is returned for a type JSON cannot represent.
type UnsupportedTypeError struct{ Type reflect.Type }

func (e *UnsupportedTypeError) Error() string { return "json: unsupported type: " + e.Type.String() }

// UnsupportedValueError is returned for NaN and infinities.
type UnsupportedValueError struct{ Str string }

func (e *UnsupportedValueError) Error() string { return "json: unsupported value: " + e.Str }

// MarshalerError is a failed MarshalJSON or MarshalText.
type MarshalerError struct {
	Type reflect.Type
	Err  error
	fn   string
}

func (e *MarshalerError) Error() string {
	return "json: error calling " + e.fn + " for type " + e.Type.String() + ": " + e.Err.Error()
}

func (e *MarshalerError) Unwrap() error { return e.Err }
