package schema

import (
	"encoding/json"
	"testing"
)

type fastArgs struct {
	Text  string  `json:"text" jsonschema:"the text"`
	N     int     `json:"n,omitempty"`
	Speed float64 `json:"speed,omitempty"`
	On    bool    `json:"on,omitempty"`
}

type notFast struct {
	Tags []string `json:"tags"`
}

func fastSchemas(t testing.TB) []*Schema {
	t.Helper()
	a, err := For[fastArgs]()
	if err != nil {
		t.Fatal(err)
	}
	open, err := Parse([]byte(`{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	return []*Schema{a, open}
}

// The schemas most tools have get the fast check; others do not.
func TestFastCheckChosen(t *testing.T) {
	for _, s := range fastSchemas(t) {
		if s.fast == nil {
			t.Errorf("schema %s: no fast check", s.JSON())
		}
	}
	s, err := For[notFast]()
	if err != nil {
		t.Fatal(err)
	}
	if s.fast != nil {
		t.Errorf("schema %s: a fast check, want none (arrays are not checked fast)", s.JSON())
	}
}

// Validate answers the same with the fast check as without it.
func TestFastCheckAgrees(t *testing.T) {
	a := fastSchemas(t)[0]
	for doc, valid := range map[string]bool{
		`{"text":"hi"}`: true,
		` { "text" : "hi" , "n" : -3, "on": true } `: true,
		`{"text":"a\"}b","speed":1.5e3}`:             true,
		`{"text":"hi","n":1.5}`:                      false,
		`{"text":"hi","extra":1}`:                    false,
		`{"n":1}`:                                    false,
		`{"text":null}`:                              false,
		`{"text":1}`:                                 false,
		`{"text":"hi","on":"yes"}`:                   false,
		`[1]`:                                        false,
		`{"text":"hi"} x`:                            false,
		`{"te\u0078t":"hi"}`:                         true,
		`{"text":"a","text":"b"}`:                    true,
	} {
		err := a.Validate([]byte(doc))
		if (err == nil) != valid {
			t.Errorf("Validate(%s) = %v; want valid %v", doc, err, valid)
		}
		if a.fast.valid([]byte(doc)) && !valid {
			t.Errorf("fast check passes %s, which is invalid", doc)
		}
	}
}

func TestFastCheckAllocs(t *testing.T) {
	a := fastSchemas(t)[0]
	doc := []byte(`{"text":"hello","n":2}`)
	if n := testing.AllocsPerRun(100, func() { _ = a.Validate(doc) }); n > 0 {
		t.Errorf("Validate of a valid document: %v allocations, want 0", n)
	}
}

// FuzzFastCheck: whatever the fast check passes, the general validator
// passes too.
func FuzzFastCheck(f *testing.F) {
	for _, seed := range []string{`{"text":"hi"}`, `{"text":"hi","n":1,"on":false,"speed":-0.5}`, `{"x":1,"y":[1,{"a":"}"}]}`, `{"x":1.0}`, `{}`, `{"text":"\\"}`} {
		f.Add([]byte(seed))
	}
	schemas := fastSchemas(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, s := range schemas {
			if !s.fast.valid(doc) {
				continue
			}
			var v any
			if err := json.Unmarshal(doc, &v); err != nil {
				t.Fatalf("fast check passes %q, which is not JSON: %v", doc, err)
			}
			if err := s.resolved.Validate(v); err != nil {
				t.Fatalf("fast check passes %q against %s; the validator says %v", doc, s.JSON(), err)
			}
		}
	})
}
