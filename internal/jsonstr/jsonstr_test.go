package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppend: Append with html writes what json.Marshal writes for the
// string; without html, what an encoder with SetEscapeHTML(false) writes.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c\n\r\t\b\f\x01\x7f", "<a href=x>&</a>", "é\u2028\u2029\xff\xfe", "\U0001F600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := Append([]byte("x"), s, true); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Fatalf("Append(%q, html) = %s; json.Marshal = %s", s, got, want)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		if got := Append(nil, s, false); !bytes.Equal(got, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))) {
			t.Fatalf("Append(%q) = %s; encoder without HTML escaping = %s", s, got, buf.Bytes())
		}
	})
}
