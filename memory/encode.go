package memory

import (
	"encoding/json"
	"github.com/depai/depai/internal/jsonstr"
	"strconv"
	"time"
)

// appendRecordJSON appends r as json.Marshal(r) would, byte for byte, for
// the records the store writes: the committer encodes every record it
// stores and fingerprints every keyed put, and encoding/json's reflection,
// with its second pass over Data (compacting and HTML-escaping a RawMessage
// that is already compact and plain), was the largest share of a put's CPU
// in the store. ok is false when r has something this encoder leaves to
// encoding/json — Data that needs escaping or compacting, an embedding, a
// time that is not UTC or outside years 0–9999 — and then the
// caller must use json.Marshal; the output is then undefined.
//
// r.Data must be valid JSON (checkRecord checks it): only its form is
// checked here.
func appendRecordJSON(b []byte, r *Record) (_ []byte, ok bool) {
	if r.Embedding != nil {
		return b, false
	}
	b = append(b, `{"id":`...)
	b = jsonstr.Append(b, r.ID, true)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"namespace":`...)
	b = jsonstr.Append(b, r.Namespace, true)
	b = append(b, `,"kind":`...)
	b = jsonstr.Append(b, string(r.Kind), true)
	if r.Author != "" {
		b = append(b, `,"author":`...)
		b = jsonstr.Append(b, r.Author, true)
	}
	b = append(b, `,"time":`...)
	if b, ok = appendTime(b, r.Time); !ok {
		return b, false
	}
	b = append(b, `,"recorded":`...)
	if b, ok = appendTime(b, r.Recorded); !ok {
		return b, false
	}
	if r.Text != "" {
		b = append(b, `,"text":`...)
		b = jsonstr.Append(b, r.Text, true)
	}
	if len(r.Data) > 0 {
		if !plainJSON(r.Data) {
			return b, false
		}
		b = append(b, `,"data":`...)
		b = append(b, r.Data...)
	}
	if len(r.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		for i, t := range r.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, t, true)
		}
		b = append(b, ']')
	}
	if r.Key != "" {
		b = append(b, `,"key":`...)
		b = jsonstr.Append(b, r.Key, true)
	}
	if !r.ExpiresAt.IsZero() {
		b = append(b, `,"expires_at":`...)
		if b, ok = appendTime(b, r.ExpiresAt); !ok {
			return b, false
		}
	}
	if !r.ValidTo.IsZero() {
		b = append(b, `,"valid_to":`...)
		if b, ok = appendTime(b, r.ValidTo); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// plainJSON reports whether json.Marshal copies the valid JSON data
// unchanged: no white space outside strings to compact and nothing it
// escapes (<, >, & and, conservatively, any byte beyond ASCII, which
// U+2028 and U+2029 would be).
func plainJSON(data []byte) bool {
	in, esc := false, false
	for _, c := range data {
		if c >= 0x7f || c == '<' || c == '>' || c == '&' {
			return false
		}
		switch {
		case esc:
			esc = false
		case in:
			esc = c == '\\'
			in = c != '"'
		case c == '"':
			in = true
		case c == ' ', c == '\t', c == '\n', c == '\r':
			return false
		}
	}
	return true
}

// appendTime appends t as time.Time.MarshalJSON does, for a UTC time in
// years 0–9999 (MarshalJSON refuses other years; other zones are left to it).
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if t.Location() != time.UTC {
		return b, false
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// marshalRecord is json.Marshal(r), by appendRecordJSON when it can.
func marshalRecord(b []byte, r *Record) ([]byte, error) {
	if out, ok := appendRecordJSON(b, r); ok {
		return out, nil
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, data...), nil
}
