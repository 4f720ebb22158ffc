package native

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

func TestDispatchPolicesResults(t *testing.T) {
	reg := registry.New()
	reg.SetInfo("t", "0")
	reply := func(out string) registry.Handler {
		return func(context.Context, json.RawMessage) (json.RawMessage, error) { return json.RawMessage(out), nil }
	}
	reg.AddTool(wire.ToolDef{Name: "ok"}, reply(`{"a":1}`))
	reg.AddTool(wire.ToolDef{Name: "garbage"}, reply(`{"a":`))
	reg.AddTool(wire.ToolDef{Name: "big"}, reply(`"`+strings.Repeat("x", 100)+`"`))
	reg.AddTool(wire.ToolDef{Name: "fails"}, func(context.Context, json.RawMessage) (json.RawMessage, error) {
		return nil, errors.New("boom")
	})
	s := &server{reg: reg}
	st := wire.ProcessStart{Plugin: "t", MaxMessageBytes: 50}
	cases := []struct {
		method, payload, code string
	}{
		{"ok", `{"a":1}`, ""},
		{"garbage", "", wire.CodeInternal},
		{"big", "", wire.CodeTooLarge},
		{"fails", "", wire.CodeInternal},
		{"missing", "", wire.CodeNotFound},
	}
	for _, tc := range cases {
		res := s.dispatch(context.Background(), st, nil, wire.Call{Method: tc.method})
		code := ""
		if res.Error != nil {
			code = res.Error.Code
		}
		if code != tc.code || string(res.Payload) != tc.payload {
			t.Errorf("%s = %s, %+v; want %q, code %q", tc.method, res.Payload, res.Error, tc.payload, tc.code)
		}
	}
}

func TestNotHostedExplains(t *testing.T) {
	reg := registry.New()
	reg.SetInfo("gnss", "1.0.0")
	t.Setenv(wire.ProcessCookieKey, "")
	err := Serve(reg)
	if !errors.Is(err, ErrNotHosted) || !strings.Contains(err.Error(), `"gnss"`) || !strings.Contains(err.Error(), "depai plugin inspect") {
		t.Fatalf("Serve by hand: %v", err)
	}
}
