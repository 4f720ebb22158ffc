package schema

import (
	"cmp"
	"encoding/json"
	"slices"
)

// fastCheck validates documents against the schema shape most tools have —
// an object of string, number, integer and boolean properties, some
// required, perhaps no others allowed — without decoding them into maps and
// walking the general validator (some 30 allocations a call, on every tool
// call of every turn). It only ever says "valid": a document it is not sure
// of, or any failure, goes to the general validator, which also words the
// error. A schema with anything else in it gets no fastCheck.
type fastCheck struct {
	props    []fastProp
	required uint64 // bit i: props[i] is required
	closed   bool   // additionalProperties: false
}

type fastProp struct {
	name string
	kind byte // 's' string, 'n' number, 'i' integer, 'b' boolean
}

// newFastCheck returns the fast check for the schema document raw, or nil
// when the schema is not of that shape.
func newFastCheck(raw []byte) *fastCheck {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return nil
	}
	f := &fastCheck{}
	var props map[string]map[string]json.RawMessage
	var required []string
	for k, v := range top {
		switch k {
		case "type":
			if string(v) != `"object"` {
				return nil
			}
		case "properties":
			if json.Unmarshal(v, &props) != nil {
				return nil
			}
		case "required":
			if json.Unmarshal(v, &required) != nil {
				return nil
			}
		case "additionalProperties":
			if string(v) != "false" {
				return nil
			}
			f.closed = true
		case "description", "title", "$schema":
		default:
			return nil
		}
	}
	if _, ok := top["type"]; !ok || len(props) > 64 {
		return nil
	}
	for name, p := range props {
		kind := byte(0)
		for k, v := range p {
			switch k {
			case "type":
				switch string(v) {
				case `"string"`:
					kind = 's'
				case `"number"`:
					kind = 'n'
				case `"integer"`:
					kind = 'i'
				case `"boolean"`:
					kind = 'b'
				default:
					return nil
				}
			case "description", "title":
			default:
				return nil
			}
		}
		if kind == 0 {
			return nil
		}
		f.props = append(f.props, fastProp{name: name, kind: kind})
	}
	slices.SortFunc(f.props, func(a, b fastProp) int { return cmp.Compare(a.name, b.name) })
	for _, r := range required {
		i := f.index([]byte(r))
		if i < 0 {
			return nil // required and not described: the general validator says what it makes of it
		}
		f.required |= 1 << i
	}
	return f
}

func (f *fastCheck) index(name []byte) int {
	for i := range f.props {
		if f.props[i].name == string(name) {
			return i
		}
	}
	return -1
}

// valid reports whether doc is certainly valid; false means "ask the
// general validator".
func (f *fastCheck) valid(doc []byte) bool {
	if !json.Valid(doc) {
		return false
	}
	// doc is valid JSON from here on, so the scan below need not check it.
	i := ws(doc, 0)
	if doc[i] != '{' {
		return false
	}
	var seen uint64
	i = ws(doc, i+1)
	if doc[i] == '}' {
		return f.required == 0
	}
	for {
		end := stringEnd(doc, i)
		key := doc[i+1 : end-1]
		if slices.Contains(key, '\\') {
			return false // an escaped key: leave its spelling to the decoder
		}
		i = ws(doc, ws(doc, end)+1) // past the colon
		p := f.index(key)
		switch {
		case p < 0:
			if f.closed {
				return false
			}
		case seen&(1<<p) != 0:
			return false // a repeated key: the decoder's rule (the last wins) decides
		default:
			seen |= 1 << p
			if !kindOK(f.props[p].kind, doc, i) {
				return false
			}
		}
		i = ws(doc, valueEnd(doc, i))
		if doc[i] == '}' {
			break
		}
		i = ws(doc, i+1) // past the comma
	}
	return seen&f.required == f.required
}

// kindOK reports whether the value at doc[i:] is of kind k.
func kindOK(k byte, doc []byte, i int) bool {
	c := doc[i]
	switch k {
	case 's':
		return c == '"'
	case 'b':
		return c == 't' || c == 'f'
	case 'n':
		return c == '-' || c >= '0' && c <= '9'
	case 'i':
		if c != '-' && (c < '0' || c > '9') {
			return false
		}
		for j := i; j < len(doc); j++ {
			switch doc[j] {
			case '.', 'e', 'E':
				return false // perhaps integral (1.0); the general validator decides
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
		}
		return true
	}
	return false
}

// ws skips JSON whitespace from i.
func ws(doc []byte, i int) int {
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd is the index just past the string that starts at doc[i].
func stringEnd(doc []byte, i int) int {
	for j := i + 1; j < len(doc); j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(doc)
}

// valueEnd is the index just past the value that starts at doc[i].
func valueEnd(doc []byte, i int) int {
	switch doc[i] {
	case '"':
		return stringEnd(doc, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(doc); j++ {
			switch doc[j] {
			case '"':
				j = stringEnd(doc, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(doc)
	}
	for j := i; j < len(doc); j++ {
		switch doc[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
	}
	return len(doc)
}
