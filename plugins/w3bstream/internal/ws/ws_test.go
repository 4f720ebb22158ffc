package ws

import (
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	m := Message{ProjectID: 91, ProjectVersion: "0.1", Data: `{"a":1}`, Signature: "0x00", DeviceDID: "did:key:z", Plugin: "w3bstream"}
	if got := string(m.Canonical()); got != `{"projectID":91,"projectVersion":"0.1","data":"{\"a\":1}"}` {
		t.Fatalf("canonical = %s", got)
	}
	if b, err := m.SignatureBytes(); err != nil || len(b) != 1 {
		t.Fatalf("signature bytes %x, %v", b, err)
	}
	if _, err := (Message{Signature: "00"}).SignatureBytes(); err == nil {
		t.Fatal("a signature without 0x decoded")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		status int
		body   string
		id     string
		err    string
	}{
		{200, `{"messageID":"4abb"}`, "4abb", ""},
		{400, `{"error":"bad signature"}`, "", "HTTP 400: bad signature"},
		{502, `<html>bad gateway</html>`, "", "HTTP 502"},
		{200, `<html>`, "", "not JSON"},
		{200, `{}`, "", "no messageID"},
		{200, strings.Repeat(" ", MaxAnswer+1), "", "limit"},
	}
	for _, tt := range tests {
		id, err := ParseSubmit(tt.status, []byte(tt.body))
		if id != tt.id || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseSubmit(%d, %.20q) = %q, %v; want %q, %q", tt.status, tt.body, id, err, tt.id, tt.err)
		}
	}
	s, err := ParseStatus(200, []byte(`{"messageID":"m","states":[{"state":"received","time":"2026-12-01T12:00:00Z"},{"state":"proved","time":"2026-12-01T12:00:05Z","comment":"0xabc"}]}`))
	if err != nil || s.Latest().State != StateProved || s.Latest().Comment != "0xabc" {
		t.Fatalf("status %+v, %v", s, err)
	}
	for _, body := range []string{`{"states":[{"time":"2026-12-01T12:00:00Z"}]}`, `[]`, `{"states":[{"state":"x","time":"yesterday"}]}`} {
		if _, err := ParseStatus(200, []byte(body)); err == nil {
			t.Errorf("ParseStatus(%s) accepted", body)
		}
	}
	if (Status{}).Latest().State != "" {
		t.Fatal("latest of no states")
	}
}

// FuzzParse: the node's answers never panic the parsers, and an accepted
// answer has what the plugin relies on.
func FuzzParse(f *testing.F) {
	f.Add(200, []byte(`{"messageID":"4abb"}`))
	f.Add(400, []byte(`{"error":"x"}`))
	f.Add(200, []byte(`{"messageID":"m","states":[{"state":"proved","time":"2026-12-01T12:00:05Z","comment":"0xabc"}]}`))
	f.Add(200, []byte(`{"states":[{}]}`))
	f.Add(500, []byte("<html>"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if id, err := ParseSubmit(status, body); err == nil && (id == "" || status != 200) {
			t.Fatalf("accepted %q with status %d", id, status)
		}
		if s, err := ParseStatus(status, body); err == nil {
			for _, st := range s.States {
				if st.State == "" {
					t.Fatal("accepted a state without a name")
				}
			}
		}
	})
}
