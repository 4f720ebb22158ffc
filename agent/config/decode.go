package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a config file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted path such as "agents[0].model.base_url"; empty for the whole file
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors caps the report: past this, more errors are noise.
const maxErrors = 20

// decoder walks yaml nodes against the config structs so that every error
// knows its line and key path; yaml's own KnownFields errors name neither the
// path nor a likely fix.
type decoder struct {
	name  string
	dir   string
	errs  Errors
	lines map[string]int // key path → line of its value
}

func newDecoder(name string) *decoder {
	return &decoder{name: name, dir: filepath.Dir(name), lines: map[string]int{}}
}

func (d *decoder) errorf(line int, key, format string, args ...any) {
	if len(d.errs) >= maxErrors {
		return
	}
	d.errs = append(d.errs, &Error{File: d.name, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// errAt reports an error at the line recorded for key.
func (d *decoder) errAt(key, format string, args ...any) {
	d.errorf(d.lines[key], key, format, args...)
}

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return d.errs
}

var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) }) // compiled at the first error, not at every start

// file decodes a whole file: a fleet when the top level has "agents", else
// one agent with its fields at the top level.
func (d *decoder) file(data []byte) *File {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(0, "", "empty file: expected an agent (name: …) or a fleet (agents: […])")
		} else {
			d.syntax(err)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.errorf(next.Line, "", "a second YAML document: put several agents under agents: in one document")
		return nil
	} else if !errors.Is(err, io.EOF) {
		d.syntax(err)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = resolve(root)
	if root.Kind != yaml.MappingNode {
		d.errorf(root.Line, "", "expected a mapping (an agent's keys, or agents: […]), got %s", describe(root))
		return nil
	}
	f := &File{Path: d.name}
	fleet := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "agents" {
			fleet = true
		}
	}
	if fleet {
		var ff struct {
			Operator Operator `yaml:"operator"`
			DataDir  string   `yaml:"data_dir"`
			Agents   []Agent  `yaml:"agents" check:"required"`
			Mesh     Mesh     `yaml:"mesh"`
		}
		d.decode(root, "", reflect.ValueOf(&ff).Elem())
		if len(ff.Agents) == 0 && len(d.errs) == 0 {
			d.errAt("agents", "expected at least one agent")
		}
		f.Operator, f.DataDir, f.Mesh, f.Agents = ff.Operator, ff.DataDir, ff.Mesh, ff.Agents
	} else {
		var sf struct {
			Agent    `yaml:",inline"`
			Operator Operator `yaml:"operator"`
			DataDir  string   `yaml:"data_dir"`
			Mesh     Mesh     `yaml:"mesh"`
		}
		d.decode(root, "", reflect.ValueOf(&sf).Elem())
		f.Operator, f.DataDir, f.Mesh, f.Agents = sf.Operator, sf.DataDir, sf.Mesh, []Agent{sf.Agent}
	}
	if len(d.errs) > 0 {
		return nil
	}
	d.finish(f, fleet)
	return f
}

// syntax reports a yaml parse error in our file:line form.
func (d *decoder) syntax(err error) {
	msg := err.Error()
	if m := yamlLine().FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.errorf(line, "", "invalid YAML: %s", m[2])
		return
	}
	d.errorf(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// resolve follows aliases. The parser never makes an alias of an alias, and
// decoding is driven by the (non-recursive) config types, so a cyclic anchor
// ends in a type error rather than endless recursion.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nodeUnmarshaler is what Duration and ByteSize implement.
type nodeUnmarshaler interface {
	UnmarshalYAML(*yaml.Node) error
}

var unmarshalerType = reflect.TypeFor[nodeUnmarshaler]()

// decode stores n into v, reporting problems under path.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	line := n.Line
	n = resolve(n)
	d.lines[path] = line
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the zero value, and so the default
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			d.errorf(line, path, "expected a scalar, got %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(nodeUnmarshaler).UnmarshalYAML(n); err != nil {
			d.errorf(line, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.mapping(n, path, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(line, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		d.stringMap(n, path, v)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, path, p.Elem())
		v.Set(p)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			d.errorf(line, path, "expected a string, got %s%s", describe(n), quoteHint(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			d.errorf(line, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Float32, reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!float" && n.Tag != "!!int") || n.Decode(&f) != nil {
			d.errorf(line, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.errorf(line, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		d.errorf(line, path, "config: cannot decode into %s", v.Type())
	}
}

// field is one key a struct accepts.
type field struct {
	index []int
	check string
}

// fields maps a struct's yaml keys to its fields, flattening ",inline".
func fields(t reflect.Type) (map[string]field, []string) {
	m := map[string]field{}
	var names []string
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opt, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if opt == "inline" {
			sub, subNames := fields(sf.Type)
			for _, k := range subNames {
				f := sub[k]
				f.index = append([]int{i}, f.index...)
				m[k] = f
			}
			names = append(names, subNames...)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		m[name] = field{index: []int{i}, check: sf.Tag.Get("check")}
		names = append(names, name)
	}
	return m, names
}

// key checks the key node k of a mapping at path: a scalar not seen before
// (seen maps keys to their lines). It returns the key's path.
func (d *decoder) key(k *yaml.Node, path string, seen map[string]int) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		d.errorf(k.Line, path, "expected a key, got %s", describe(k))
		return "", false
	}
	key := join(path, k.Value)
	if first, dup := seen[k.Value]; dup {
		d.errorf(k.Line, key, "duplicate key (first at line %d)", first)
		return "", false
	}
	seen[k.Value] = k.Line
	return key, true
}

func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	line := d.lines[path]
	if n.Kind != yaml.MappingNode {
		d.errorf(line, path, "expected a mapping, got %s", describe(n))
		return
	}
	fs, names := fields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		key, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		f, ok := fs[k.Value]
		if !ok {
			if _, inModel := fs["api_key_env"]; inModel && k.Value == "api_key" {
				d.errorf(k.Line, key, "unknown key: secrets do not go in the config file; put the key in an environment variable and name it in api_key_env")
				continue
			}
			if s := suggest(k.Value, names); s != "" {
				d.errorf(k.Line, key, "unknown key (did you mean %q?)", s)
			} else {
				d.errorf(k.Line, key, "unknown key (expected one of %s)", strings.Join(names, ", "))
			}
			continue
		}
		before := len(d.errs)
		fv := v.FieldByIndex(f.index)
		d.decode(val, key, fv)
		if len(d.errs) == before && resolve(val).Tag != "!!null" {
			d.check(key, fv, f.check)
		}
	}
	for _, name := range names {
		if _, ok := seen[name]; !ok && strings.Contains(fs[name].check, "required") {
			d.errorf(line, path, "missing required key %q", name)
		}
	}
}

// check applies a field's `check` tag: required, positive, nonneg,
// oneof=a|b, range=lo..hi.
func (d *decoder) check(key string, v reflect.Value, spec string) {
	if spec == "" {
		return
	}
	for c := range strings.SplitSeq(spec, ",") {
		name, arg, _ := strings.Cut(c, "=")
		switch name {
		case "positive", "nonneg":
			var x float64
			switch v.Kind() {
			case reflect.Int, reflect.Int64:
				x = float64(v.Int())
			case reflect.Float32, reflect.Float64:
				x = v.Float()
			}
			if name == "positive" && x <= 0 {
				d.errAt(key, "must be positive, got %v", display(v))
			} else if name == "nonneg" && x < 0 {
				d.errAt(key, "must not be negative, got %v", display(v))
			}
		case "oneof":
			s := v.String()
			if s != "" && !slices.Contains(strings.Split(arg, "|"), s) {
				d.errAt(key, "unknown value %q (expected %s)", s, strings.ReplaceAll(arg, "|", " or "))
			}
		case "range":
			lo, hi, _ := strings.Cut(arg, "..")
			l, _ := strconv.ParseFloat(lo, 64)
			h, _ := strconv.ParseFloat(hi, 64)
			x := v
			if x.Kind() == reflect.Pointer {
				x = x.Elem()
			}
			if f := x.Float(); f < l || f > h || f != f {
				d.errAt(key, "%v is out of range (expected %s to %s)", display(x), lo, hi)
			}
		}
	}
}

// display renders a value the way the user wrote it.
func display(v reflect.Value) any {
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	return v.Interface()
}

func (d *decoder) stringMap(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(d.lines[path], path, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), resolve(n.Content[i+1])
		key, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		d.lines[key] = n.Content[i+1].Line
		// Plugin config values are strings to the plugin; a number or a
		// boolean is taken as written.
		if val.Kind != yaml.ScalarNode {
			d.errorf(n.Content[i+1].Line, key, "expected a string, got %s", describe(val))
			continue
		}
		m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(val.Value))
	}
	v.Set(m)
}

// describe names a node's kind for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		kind := map[string]string{
			"!!str": "string", "!!int": "integer", "!!float": "number",
			"!!bool": "boolean", "!!null": "null", "!!timestamp": "timestamp",
		}[n.Tag]
		if kind == "" {
			kind = "value"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Sprintf("%s %q", kind, v)
	}
	return "an unexpected node"
}

func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return " (quote it to make it a string)"
	}
	return ""
}

// suggest returns the candidate closest to s, if it is close enough to be a
// likely typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+2
	for _, c := range candidates {
		if dist := distance(strings.ToLower(s), c); dist < bestD {
			best, bestD = c, dist
		}
	}
	return best
}

// distance is the optimal string alignment distance: edits plus adjacent
// transpositions, the commonest typo ("modle").
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
