package memory

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// parseRecordJSON decodes what appendRecordJSON writes, as json.Unmarshal
// would into a zero Record: reads of records that have left the RAM ring
// (recall's hits in a store of many turns) spent most of their allocations
// in encoding/json's reflection. ok is false for anything but that form —
// fields in another order or unknown, a surrogate \u escape, invalid
// UTF-8, an embedding — and then the caller must use json.Unmarshal; r is
// then undefined.
//
// The record's strings share one allocation, so a record costs three: its
// strings, its tags and its data.
func parseRecordJSON(meta []byte) (r Record, ok bool) {
	var p recordParser
	if !p.parse(meta) {
		return Record{}, false
	}
	fields := [...]*span{&p.id, &p.namespace, &p.kind, &p.author, &p.text, &p.key}
	n := 0
	for _, f := range fields {
		n += f.end - f.start
	}
	for i := range p.ntags {
		t := p.tag(i)
		n += t.end - t.start
	}
	var sb strings.Builder
	sb.Grow(n)
	put := func(sp span) span {
		start := sb.Len()
		if sp.escaped {
			unescapeTo(&sb, meta[sp.start:sp.end])
		} else {
			sb.Write(meta[sp.start:sp.end])
		}
		return span{start: start, end: sb.Len()}
	}
	var out [len(fields)]span
	for i, f := range fields {
		out[i] = put(*f)
	}
	for i := range p.ntags {
		p.setTag(i, put(p.tag(i)))
	}
	s := sb.String()
	r = Record{ID: s[out[0].start:out[0].end], Seq: p.seq, Namespace: s[out[1].start:out[1].end], Kind: Kind(s[out[2].start:out[2].end]),
		Author: s[out[3].start:out[3].end], Text: s[out[4].start:out[4].end], Key: s[out[5].start:out[5].end],
		Time: p.time, Recorded: p.recorded, ExpiresAt: p.expiresAt, ValidTo: p.validTo}
	if p.dataEnd > p.dataStart {
		r.Data = json.RawMessage(bytes.Clone(meta[p.dataStart:p.dataEnd]))
	}
	if p.ntags > 0 {
		r.Tags = make([]string, p.ntags)
		for i := range r.Tags {
			t := p.tag(i)
			r.Tags[i] = s[t.start:t.end]
		}
	}
	return r, true
}

// unescapeTo writes the string raw (between its quotes, checked by
// recordParser.str) decoded.
func unescapeTo(sb *strings.Builder, raw []byte) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			sb.WriteByte(c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			sb.WriteRune(rune(hex4(raw[i+1 : i+5])))
			i += 4
		default: // '"', '\\', '/'
			sb.WriteByte(raw[i])
		}
	}
}

// hex4 is the value of four hex digits, or -1.
func hex4(b []byte) int {
	if len(b) < 4 {
		return -1
	}
	v := 0
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		v = v<<4 | int(c)
	}
	return v
}

// span is a string's bytes in meta, quotes excluded; escaped says it has a
// backslash escape.
type span struct {
	start, end int
	escaped    bool
}

// recordParser walks meta once, recording where each field is.
type recordParser struct {
	b   []byte
	pos int

	id, namespace, kind, author, text, key span
	seq                                    uint64
	time, recorded, expiresAt, validTo     time.Time
	dataStart, dataEnd                     int
	// The tags' spans: the first few in an array, so that the parser
	// itself stays on the stack, the rest in more.
	ntags int
	tags  [8]span
	more  []span
}

func (p *recordParser) addTag(t span) {
	if p.ntags < len(p.tags) {
		p.tags[p.ntags] = t
	} else {
		p.more = append(p.more, t)
	}
	p.ntags++
}

func (p *recordParser) setTag(i int, t span) {
	if i < len(p.tags) {
		p.tags[i] = t
	} else {
		p.more[i-len(p.tags)] = t
	}
}

func (p *recordParser) tag(i int) span {
	if i < len(p.tags) {
		return p.tags[i]
	}
	return p.more[i-len(p.tags)]
}

func (p *recordParser) parse(b []byte) bool {
	p.b = b
	if !p.lit(`{"id":`) || !p.str(&p.id) || !p.lit(`,"seq":`) || !p.uint(&p.seq) ||
		!p.lit(`,"namespace":`) || !p.str(&p.namespace) || !p.lit(`,"kind":`) || !p.str(&p.kind) {
		return false
	}
	if p.opt(`,"author":`) && !p.str(&p.author) {
		return false
	}
	if !p.lit(`,"time":`) || !p.timestamp(&p.time) || !p.lit(`,"recorded":`) || !p.timestamp(&p.recorded) {
		return false
	}
	if p.opt(`,"text":`) && !p.str(&p.text) {
		return false
	}
	p.dataStart, p.dataEnd = p.pos, p.pos
	if p.opt(`,"data":`) && !p.data() {
		return false
	}
	if p.opt(`,"tags":[`) {
		for {
			var t span
			if !p.str(&t) {
				return false
			}
			p.addTag(t)
			if p.opt(`]`) {
				break
			}
			if !p.lit(`,`) {
				return false
			}
		}
	}
	if p.opt(`,"key":`) && !p.str(&p.key) {
		return false
	}
	if p.opt(`,"expires_at":`) && !p.timestamp(&p.expiresAt) {
		return false
	}
	if p.opt(`,"valid_to":`) && !p.timestamp(&p.validTo) {
		return false
	}
	return p.lit(`}`) && p.pos == len(p.b)
}

// lit consumes s, which must come next.
func (p *recordParser) lit(s string) bool { return p.opt(s) }

// opt consumes s if it comes next.
func (p *recordParser) opt(s string) bool {
	if len(p.b)-p.pos < len(s) || string(p.b[p.pos:p.pos+len(s)]) != s {
		return false
	}
	p.pos += len(s)
	return true
}

// str consumes a quoted string that json.Unmarshal decodes to its bytes
// with these escapes decoded: valid UTF-8, no control bytes, the escapes
// JSON has but a \u for half a surrogate pair (encoding/json pairs or
// replaces those; they are left to it).
func (p *recordParser) str(sp *span) bool {
	if p.pos >= len(p.b) || p.b[p.pos] != '"' {
		return false
	}
	start, escaped := p.pos+1, false
	for i := start; i < len(p.b); {
		c := p.b[i]
		switch {
		case c == '"':
			*sp = span{start: start, end: i, escaped: escaped}
			p.pos = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 >= len(p.b) {
				return false
			}
			escaped = true
			switch p.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				v := hex4(p.b[i+2:])
				if v < 0 || utf16.IsSurrogate(rune(v)) {
					return false
				}
				i += 6
			default:
				return false
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(p.b[i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			i += size
		}
	}
	return false
}

// uint consumes a decimal without sign, leading zeros, fraction or
// exponent that fits a uint64.
func (p *recordParser) uint(v *uint64) bool {
	end := p.pos
	for end < len(p.b) && p.b[end] >= '0' && p.b[end] <= '9' {
		end++
	}
	digits := p.b[p.pos:end]
	if len(digits) == 0 || len(digits) > 1 && digits[0] == '0' {
		return false
	}
	if end < len(p.b) && (p.b[end] == '.' || p.b[end] == 'e' || p.b[end] == 'E') {
		return false
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return false
	}
	*v, p.pos = n, end
	return true
}

// timestamp consumes a quoted time as time.Time.UnmarshalJSON reads it.
func (p *recordParser) timestamp(t *time.Time) bool {
	start := p.pos
	var sp span
	if !p.str(&sp) {
		return false
	}
	return t.UnmarshalJSON(p.b[start:p.pos]) == nil
}

// data consumes one compact JSON value — an object, array, string or
// literal, no white space outside its strings — and checks it is valid
// JSON, as encoding/json does before it copies a RawMessage.
func (p *recordParser) data() bool {
	start, depth, in, esc := p.pos, 0, false, false
	i := p.pos
	for ; i < len(p.b); i++ {
		c := p.b[i]
		switch {
		case esc:
			esc = false
			continue
		case in:
			esc = c == '\\'
			in = c != '"'
			if !in && depth == 0 {
				i++
				goto done
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			return false // encoding/json would trim or compact it; the store writes none
		case '"':
			in = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				goto done
			}
			depth--
			if depth == 0 {
				i++
				goto done
			}
		case ',':
			if depth == 0 {
				goto done
			}
		}
	}
done:
	if i == start || !json.Valid(p.b[start:i]) {
		return false
	}
	p.dataStart, p.dataEnd, p.pos = start, i, i
	return true
}
