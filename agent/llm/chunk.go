package llm

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

// decodeChunk decodes data into c, which holds a zero streamChunk,
// exactly as json.Unmarshal would — or reports false, leaving c to be reset
// and decoded by encoding/json, which then also says what is wrong with
// data. It reads the chunks endpoints send: one JSON object, with known
// keys spelled as the fields' tags, strings without surrogate escapes,
// integers that fit an int; anything else (invalid JSON, a key that only
// matches a field case-insensitively, a repeated key, a value of an
// unexpected type, the usage details, nesting past maxDepth) goes to
// encoding/json. Decoding every chunk by reflection was a quarter of a
// turn's CPU. FuzzDecodeChunk holds it to json.Unmarshal.
func decodeChunk(data []byte, c *streamChunk) bool {
	r := chunkReader{b: data}
	ok := r.object(func(key []byte) bool {
		switch string(key) {
		case "choices":
			if r.null() {
				c.Choices = nil
				return true
			}
			if c.Choices == nil && r.at() == '[' {
				c.Choices = []choice{} // an empty array is not nil
			}
			return r.array(func() bool {
				// Elements past the length were zeroed by the caller, and
				// encoding/json reuses them too.
				if len(c.Choices) < cap(c.Choices) {
					c.Choices = c.Choices[:len(c.Choices)+1]
				} else {
					c.Choices = append(c.Choices, choice{})
				}
				return r.choice(&c.Choices[len(c.Choices)-1])
			})
		case "usage":
			if r.null() {
				c.Usage = nil
				return true
			}
			c.Usage = new(openai.Usage)
			return r.usage(c.Usage)
		}
		return r.other(key, "choices", "usage")
	})
	return ok && r.at() == 0 && r.i == len(r.b)
}

// maxDepth bounds the nesting decodeChunk follows in values it skips.
const maxDepth = 64

// chunkReader reads JSON, checking its syntax as it goes.
type chunkReader struct {
	b     []byte
	i     int
	depth int
}

func (r *chunkReader) ws() {
	for r.i < len(r.b) && (r.b[r.i] == ' ' || r.b[r.i] == '\t' || r.b[r.i] == '\n' || r.b[r.i] == '\r') {
		r.i++
	}
}

// at reports the next byte after white space (0 at the end).
func (r *chunkReader) at() byte {
	r.ws()
	if r.i == len(r.b) {
		return 0
	}
	return r.b[r.i]
}

// literal consumes word if it is next.
func (r *chunkReader) literal(word string) bool {
	if r.at() == word[0] && len(r.b)-r.i >= len(word) && string(r.b[r.i:r.i+len(word)]) == word {
		r.i += len(word)
		return true
	}
	return false
}

// null consumes a null.
func (r *chunkReader) null() bool { return r.literal("null") }

// object calls field for each key of the object at r, positioned on its
// value; a key repeated, or with escapes, gives up.
func (r *chunkReader) object(field func(key []byte) bool) bool {
	if r.at() != '{' || r.depth == maxDepth {
		return false
	}
	r.i++
	r.depth++
	var seen [16][]byte
	n := 0
	for first := true; ; first = false {
		switch c := r.at(); {
		case c == '}' && first:
			r.i++
			r.depth--
			return true
		case !first && c == '}':
			r.i++
			r.depth--
			return true
		case !first && c != ',':
			return false
		case !first:
			r.i++
		}
		key, ok := r.rawString()
		if !ok || n == len(seen) {
			return false
		}
		for _, k := range seen[:n] {
			if bytes.Equal(k, key) {
				return false // the last would win, and slices would be reused: encoding/json's case
			}
		}
		seen[n] = key
		n++
		if r.at() != ':' {
			return false
		}
		r.i++
		if !field(key) {
			return false
		}
	}
}

// array calls elem for each element of the array at r.
func (r *chunkReader) array(elem func() bool) bool {
	if r.at() != '[' || r.depth == maxDepth {
		return false
	}
	r.i++
	r.depth++
	for first := true; ; first = false {
		switch c := r.at(); {
		case c == ']' && first, !first && c == ']':
			r.i++
			r.depth--
			return true
		case !first && c != ',':
			return false
		case !first:
			r.i++
		}
		if !elem() {
			return false
		}
	}
}

// other skips the value of a key that is none of known, unless it matches
// one of them case-insensitively (encoding/json would decode it there).
func (r *chunkReader) other(key []byte, known ...string) bool {
	for _, k := range known {
		if bytes.EqualFold(key, []byte(k)) {
			return false
		}
	}
	return r.skip()
}

// skip passes over one value, checking it.
func (r *chunkReader) skip() bool {
	switch c := r.at(); {
	case c == '{':
		return r.object(func([]byte) bool { return r.skip() })
	case c == '[':
		return r.array(r.skip)
	case c == '"':
		_, _, ok := r.string()
		return ok
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.null()
	}
	_, ok := r.number()
	return ok
}

// number consumes a number and reports whether it is an integer (no
// fraction or exponent).
func (r *chunkReader) number() (integer, ok bool) {
	r.ws()
	digits := func() int {
		n := 0
		for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case digits() == 0:
		return false, false
	}
	integer = true
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if digits() == 0 {
			return false, false
		}
		integer = false
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if digits() == 0 {
			return false, false
		}
		integer = false
	}
	return integer, true
}

// string consumes a string and returns what is between its quotes, and
// whether that has escapes; ok is false for a string JSON does not allow.
func (r *chunkReader) string() (raw []byte, plain, ok bool) {
	if r.at() != '"' {
		return nil, false, false
	}
	r.i++
	start := r.i
	plain = true
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			r.i++
			return r.b[start : r.i-1], plain, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			plain = false
			r.i++
			if r.i == len(r.b) {
				return nil, false, false
			}
			switch r.b[r.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(r.b)-r.i < 5 {
					return nil, false, false
				}
				for _, h := range r.b[r.i+1 : r.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false, false
					}
				}
				r.i += 4
			default:
				return nil, false, false
			}
		}
		r.i++
	}
	return nil, false, false
}

// rawString consumes a string without escapes (a key) and returns its bytes.
func (r *chunkReader) rawString() ([]byte, bool) {
	raw, plain, ok := r.string()
	return raw, ok && plain
}

// str decodes a string value; null leaves *dst alone.
func (r *chunkReader) str(dst *string) bool {
	if r.null() {
		return true
	}
	raw, plain, ok := r.string()
	switch {
	case !ok:
		return false
	case plain:
		if !utf8.Valid(raw) {
			return false // encoding/json replaces bad bytes with U+FFFD
		}
		*dst = string(raw)
		return true
	}
	s, ok := unescape(raw)
	*dst = s
	return ok
}

// unescape decodes a string's escapes; a surrogate or bad UTF-8 gives up.
func unescape(b []byte) (string, bool) {
	if !utf8.Valid(b) {
		return "", false
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch b[i] {
		case '"', '\\', '/':
			out = append(out, b[i])
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
			v, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 32)
			if err != nil || v >= 0xd800 && v < 0xe000 {
				return "", false
			}
			out = utf8.AppendRune(out, rune(v))
			i += 4
		}
	}
	return string(out), true
}

// integer decodes an int value; null leaves *dst alone.
func (r *chunkReader) integer(dst *int) bool {
	if r.null() {
		return true
	}
	r.ws()
	start := r.i
	integer, ok := r.number()
	if !ok || !integer {
		return false
	}
	v, err := strconv.ParseInt(string(r.b[start:r.i]), 10, strconv.IntSize)
	*dst = int(v)
	return err == nil
}

func (r *chunkReader) choice(c *choice) bool {
	return r.object(func(key []byte) bool {
		switch string(key) {
		case "index":
			return r.integer(&c.Index)
		case "finish_reason":
			return r.str(&c.FinishReason)
		case "delta":
			if r.null() {
				return true
			}
			return r.object(func(key []byte) bool {
				switch string(key) {
				case "content":
					return r.str(&c.Delta.Content)
				case "tool_calls":
					if r.null() {
						c.Delta.ToolCalls = nil
						return true
					}
					return r.toolCalls(&c.Delta.ToolCalls)
				}
				return r.other(key, "content", "tool_calls")
			})
		}
		return r.other(key, "index", "finish_reason", "delta")
	})
}

func (r *chunkReader) toolCalls(dst *[]openai.ToolCall) bool {
	if r.at() != '[' {
		return false
	}
	r.i++
	calls := []openai.ToolCall{}
	for {
		switch r.at() {
		case ']':
			r.i++
			*dst = calls
			return true
		case ',':
			r.i++
			continue
		}
		calls = append(calls, openai.ToolCall{})
		tc := &calls[len(calls)-1]
		ok := r.object(func(key []byte) bool {
			switch string(key) {
			case "index":
				if r.null() {
					tc.Index = nil
					return true
				}
				tc.Index = new(int)
				return r.integer(tc.Index)
			case "id":
				return r.str(&tc.ID)
			case "type":
				s := string(tc.Type)
				ok := r.str(&s)
				tc.Type = openai.ToolType(s)
				return ok
			case "function":
				if r.null() {
					return true
				}
				return r.object(func(key []byte) bool {
					switch string(key) {
					case "name":
						return r.str(&tc.Function.Name)
					case "arguments":
						return r.str(&tc.Function.Arguments)
					}
					return r.other(key, "name", "arguments")
				})
			}
			return r.other(key, "index", "id", "type", "function")
		})
		if !ok {
			return false
		}
	}
}

func (r *chunkReader) usage(u *openai.Usage) bool {
	return r.object(func(key []byte) bool {
		switch string(key) {
		case "prompt_tokens":
			return r.integer(&u.PromptTokens)
		case "completion_tokens":
			return r.integer(&u.CompletionTokens)
		case "total_tokens":
			return r.integer(&u.TotalTokens)
		}
		// The details are pointers to structs of their own: encoding/json's.
		return r.other(key, "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details")
	})
}
