package tool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/depai/depai/agent/tool"
)

type addIn struct {
	A int `json:"a"`
	B int `json:"b"`
}

type addOut struct {
	Sum int `json:"sum"`
}

func adder(t *testing.T, name, source string) tool.Tool {
	t.Helper()
	f, err := tool.New(name, "Adds.", tool.EffectNone, func(_ context.Context, in addIn) (addOut, error) {
		return addOut{Sum: in.A + in.B}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sourced{f, source}
}

// sourced gives a tool another Source, as the plugin host does.
type sourced struct {
	tool.Tool
	source string
}

func (s sourced) Spec() tool.Spec {
	sp := s.Tool.Spec()
	sp.Source = s.source
	return sp
}

// badSchema is a tool whose input schema is not a JSON Schema.
type badSchema struct{}

func (badSchema) Spec() tool.Spec {
	return tool.Spec{Name: "bad", InputSchema: json.RawMessage(`{"type": 7}`)}
}
func (badSchema) Call(context.Context, json.RawMessage) (json.RawMessage, error) { return nil, nil }

func TestSet(t *testing.T) {
	s := tool.NewSet()
	if err := s.Add(adder(t, "math.add", "builtin"), adder(t, "plug.add", "plug")); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(adder(t, "math.add", "other")); err == nil || !strings.Contains(err.Error(), "already provided by builtin") {
		t.Errorf("duplicate name: %v", err)
	}
	if err := s.Add(adder(t, "x", ""), adder(t, "x", "")); err == nil || s.Len() != 2 {
		t.Errorf("duplicate within one Add: %v (len %d; the set must be unchanged)", err, s.Len())
	}
	if err := s.Add(badSchema{}); err == nil || !strings.Contains(err.Error(), "tool bad: input schema") {
		t.Errorf("bad schema: %v", err)
	}

	ctx := context.Background()
	out, err := s.Call(ctx, "math.add", json.RawMessage(`{"a":2,"b":3}`))
	if err != nil || string(out) != `{"sum":5}` {
		t.Errorf("call = %s, %v", out, err)
	}
	for _, tc := range []struct {
		name, args, code, want string
	}{
		{"math.add", `{"a":2}`, tool.CodeInvalidArgument, `missing properties: ["b"]`},
		{"math.add", `{"a":"two","b":3}`, tool.CodeInvalidArgument, "expected schema"},
		{"math.add", `{"a":1,"b":2,"c":3}`, tool.CodeInvalidArgument, "c"},
		{"math.add", `[1,2]`, tool.CodeInvalidArgument, "schema"},
		{"nope", `{}`, tool.CodeNotFound, "available: math.add, plug.add"},
	} {
		_, err := s.Call(ctx, tc.name, json.RawMessage(tc.args))
		var te *tool.Error
		if !errors.As(err, &te) || te.Code != tc.code || !strings.Contains(te.Message, tc.want) {
			t.Errorf("%s %s: %v, want %s mentioning %q", tc.name, tc.args, err, tc.code, tc.want)
		}
	}

	if n := s.RemoveSource("plug"); n != 1 {
		t.Errorf("removed %d tools of plug", n)
	}
	var names []string
	for _, sp := range s.Specs() {
		names = append(names, sp.Name)
	}
	if fmt.Sprint(names) != "[math.add]" {
		t.Errorf("specs after removal = %v", names)
	}
}

func TestNewRejectsTypesWithoutSchema(t *testing.T) {
	_, err := tool.New("bad", "", tool.EffectNone, func(context.Context, struct{ C chan int }) (addOut, error) { return addOut{}, nil })
	if err == nil || !strings.Contains(err.Error(), "tool bad: input") {
		t.Errorf("err = %v", err)
	}
}

func ExampleNew() {
	add, _ := tool.New("math.add", "Adds two integers.", tool.EffectNone, func(_ context.Context, in addIn) (addOut, error) {
		return addOut{Sum: in.A + in.B}, nil
	})
	out, _ := add.Call(context.Background(), json.RawMessage(`{"a":40,"b":2}`))
	fmt.Println(string(out))
	fmt.Println(string(add.Spec().InputSchema))
	// Output:
	// {"sum":42}
	// {"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"],"additionalProperties":false}
}
