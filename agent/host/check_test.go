package host

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/depai/depai/sdk/wire"
)

func TestCheckManifest(t *testing.T) {
	good := wire.ToolDef{Name: "t.a", Input: json.RawMessage(`{"type":"object"}`)}
	tests := []struct {
		name   string
		m      wire.Manifest
		grants wire.Capabilities
		want   string // "" means it loads
	}{
		{"ok", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{good}}, wire.Capabilities{}, ""},
		{"abi", wire.Manifest{ABI: 2}, wire.Capabilities{}, "speaks plugin ABI 2; this agent speaks ABI 1"},
		{"errors", wire.Manifest{ABI: 1, Errors: []string{"tool x: input: chan"}}, wire.Capabilities{}, "registration failed: tool x: input: chan"},
		{"dup", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{good, good}}, wire.Capabilities{}, `method "t.a" is registered twice`},
		{"dup sensor", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{good}, Sensors: []wire.SensorDef{{Name: "t.a"}}}, wire.Capabilities{}, "registered twice"},
		{"noname", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{{}}}, wire.Capabilities{}, "a tool has no name"},
		{"bad schema", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{{Name: "t.b", Input: json.RawMessage(`{"type":7}`)}}}, wire.Capabilities{}, "tool t.b: input schema"},
		{"bad output schema", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{{Name: "t.b", Output: json.RawMessage(`[`)}}}, wire.Capabilities{}, "tool t.b: output schema"},
		{"effect", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{{Name: "t.b", Effect: "explode"}}}, wire.Capabilities{}, `effect "explode"`},
		{"actuator", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{{Name: "arm.move", Effect: "actuator"}}}, wire.Capabilities{}, "arm.move is an actuator but the plugin is not granted actuator"},
		{"actuator granted", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{{Name: "arm.move", Effect: "actuator"}}}, wire.Capabilities{Actuator: true}, ""},
		{"payment", wire.Manifest{ABI: 1, Tools: []wire.ToolDef{{Name: "pay.send", Effect: "payment"}}}, wire.Capabilities{}, "not granted payment"},
		{"interval", wire.Manifest{ABI: 1, Sensors: []wire.SensorDef{{Name: "s", Interval: "1ns"}}}, wire.Capabilities{}, `interval "1ns"`},
		{"interval syntax", wire.Manifest{ABI: 1, Sensors: []wire.SensorDef{{Name: "s", Interval: "often"}}}, wire.Capabilities{}, `interval "often"`},
		{"requests", wire.Manifest{ABI: 1, Requests: wire.Capabilities{HTTP: []string{"api.example.com"}, Clock: true}}, wire.Capabilities{}, `requests capabilities that are not granted: http "api.example.com", clock`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Plugin{spec: PluginSpec{Name: "p", Grants: tt.grants}, manifest: tt.m}
			err := p.check()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `plugin "p"`) {
				t.Fatalf("check = %v; want an error naming the plugin and saying %q", err, tt.want)
			}
		})
	}
}

func TestMissing(t *testing.T) {
	tests := []struct {
		req, grant wire.Capabilities
		want       string
	}{
		{wire.Capabilities{}, wire.Capabilities{}, ""},
		{wire.Capabilities{MemoryRead: []string{"fleet/site-a"}}, wire.Capabilities{MemoryRead: []string{"fleet"}}, ""},
		{wire.Capabilities{MemoryRead: []string{"fleet"}}, wire.Capabilities{MemoryRead: []string{"fleet/site-a"}}, `memory_read "fleet"`},
		{wire.Capabilities{MemoryWrite: []string{"agent/robot-10"}}, wire.Capabilities{MemoryWrite: []string{"agent/robot-1"}}, `memory_write "agent/robot-10"`},
		{wire.Capabilities{HTTP: []string{"API.example.com"}}, wire.Capabilities{HTTP: []string{"api.example.com"}}, ""},
		{wire.Capabilities{Emit: []string{"a", "b"}, Secrets: []string{"k"}, Config: []string{"c"}}, wire.Capabilities{Emit: []string{"a"}}, `emit "b", secrets "k", config "c"`},
		{wire.Capabilities{Clock: true, Random: true, Actuator: true, Payment: true}, wire.Capabilities{}, "clock, actuator, payment"},
		{wire.Capabilities{Net: []string{"127.0.0.1:2947"}, Files: []wire.FileGrant{{Path: "/dev/ttyUSB0", Mode: wire.FileRW}, {Path: "/etc/gnss/conf", Mode: wire.FileRO}}},
			wire.Capabilities{Files: []wire.FileGrant{{Path: "/dev/ttyUSB0", Mode: wire.FileRO}, {Path: "/etc/gnss", Mode: wire.FileRO}}},
			`net "127.0.0.1:2947", files "/dev/ttyUSB0" (rw)`},
	}
	for _, tt := range tests {
		if got := strings.Join(Missing(tt.req, tt.grant), ", "); got != tt.want {
			t.Errorf("Missing(%+v, %+v) = %q; want %q", tt.req, tt.grant, got, tt.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	for head, want := range map[string]string{
		"\x00asm":          KindWASM,
		"\x7fELF":          KindProcess,
		"\xcf\xfa\xed\xfe": KindProcess,
		"MZ\x90\x00":       KindProcess,
		"#!/b":             KindProcess,
		"{\"a":             "",
		"":                 "",
	} {
		if got := KindOf([]byte(head)); got != want {
			t.Errorf("KindOf(%q) = %q; want %q", head, got, want)
		}
	}
}
