package schema_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/depai/depai/sdk/schema"
)

type move struct {
	X     float64         `json:"x" jsonschema:"metres east"`
	Y     float64         `json:"y"`
	Speed float64         `json:"speed,omitempty"`
	Extra json.RawMessage `json:"extra,omitempty"`
}

func TestValidate(t *testing.T) {
	s, err := schema.For[move]()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc  string
		want string // "" for valid
	}{
		{`{"x":1,"y":2}`, ""},
		{`{"x":1,"y":2,"extra":{"any":["json",1]}}`, ""},
		{`{"x":1,"y":2,"extra":"text"}`, ""},
		{`{"x":1}`, "y"},
		{`{"x":"one","y":2}`, "x"},
		{`{"x":1,"y":2,"z":3}`, "z"},
		{`{"x":1,`, "not valid JSON"},
		{``, "x"},
	} {
		err := s.Validate([]byte(tc.doc))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.doc, err, tc.want)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	s, err := schema.For[move]()
	if err != nil {
		t.Fatal(err)
	}
	again, err := schema.Parse(s.JSON())
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(s.JSON(), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again.JSON(), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip changed the schema:\n%s\n%s", s.JSON(), again.JSON())
	}
	if _, err := schema.Parse([]byte(`{"type": 12}`)); err == nil {
		t.Error("a schema with a numeric type parsed")
	}
}

func ExampleFor() {
	s, _ := schema.For[struct {
		Name string `json:"name"`
	}]()
	fmt.Println(string(s.JSON()))
	// Output: {"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}
}
