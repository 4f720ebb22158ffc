package hosttest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/depai/depai/agent/host/hosttest"
	"github.com/depai/depai/sdk/wire"
)

// The SDK's host helpers, run by testdata/sdkplugin's WASM build behind the
// real host.

var sdkPlugin = hosttest.Dir("testdata/sdkplugin")

type keyIn struct {
	Key string `json:"key"`
}

type valueOut struct {
	Value string `json:"value"`
}

type fetchIn struct {
	URL string `json:"url"`
}

type memOut struct {
	ID, Author, Text string
	Found            int
}

type none struct{}

var requests = wire.Capabilities{
	Config: []string{"region"}, Secrets: []string{"token"}, Emit: []string{"alerts"}, Clock: true,
	MemoryRead: []string{"shared"}, MemoryWrite: []string{"shared/sdktest"}, Actuator: true,
}

func code(err error) string {
	if we, ok := errors.AsType[*wire.Error](err); ok {
		return we.Code
	}
	return fmt.Sprintf("not a wire error: %v", err)
}

func TestManifest(t *testing.T) {
	m := hosttest.New(t, sdkPlugin).Manifest()
	if m.Name != "sdktest" || m.Version != "1.2.3" || m.ABI != wire.ABIVersion || len(m.Errors) != 0 {
		t.Fatalf("manifest = %+v", m)
	}
	effects := map[string]wire.Effect{}
	for _, d := range m.Tools {
		effects[d.Name] = d.Effect
		if !json.Valid(d.Input) || !json.Valid(d.Output) {
			t.Errorf("%s: schemas %s / %s", d.Name, d.Input, d.Output)
		}
	}
	if len(effects) != 10 || effects["t.move"] != "actuator" || effects["t.now"] != "" {
		t.Errorf("tools = %v", effects)
	}
	if len(m.Sensors) != 1 || m.Sensors[0].Interval != "1s" {
		t.Errorf("sensors = %+v", m.Sensors)
	}
}

func TestHostHelpers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong ", r.URL.Path) }))
	defer srv.Close()
	grants := requests
	grants.HTTP = []string{strings.TrimPrefix(srv.URL, "http://")}
	var logs strings.Builder
	pt := hosttest.New(t, sdkPlugin,
		hosttest.Grants(grants),
		hosttest.Config(map[string]string{"region": "eu-1"}),
		hosttest.Secrets(map[string]string{"token": "s3cr3t", "other": "x"}),
		hosttest.Logger(slog.New(slog.NewTextHandler(&logs, nil))),
	)
	tests := []struct {
		tool     string
		in       any
		want     string // JSON result, or
		wantCode string
	}{
		{"t.config", keyIn{"region"}, `{"value":"eu-1"}`, ""},
		{"t.config", keyIn{"zone"}, "", wire.CodeDenied},
		{"t.secret", keyIn{"token"}, `{"value":"s3cr3t"}`, ""},
		{"t.secret", keyIn{"other"}, "", wire.CodeDenied},
		{"t.emit", keyIn{"alerts"}, `{}`, ""},
		{"t.emit", keyIn{"billing"}, "", wire.CodeDenied},
		{"t.fetch", fetchIn{srv.URL + "/ping"}, `{"status":200,"body":"pong /ping"}`, ""},
		{"t.fetch", fetchIn{"http://example.com/"}, "", wire.CodeDenied},
		{"t.mem", keyIn{"shared/sdktest/x"}, "", ""},
		{"t.mem", keyIn{"private"}, "", wire.CodeDenied},
		{"t.log", none{}, `{}`, ""},
		{"t.coded", none{}, "", wire.CodeNotFound},
		{"t.plain", none{}, "", wire.CodeInternal},
		{"t.config", map[string]int{"key": 1}, "", wire.CodeInvalidArgument},
	}
	for _, tt := range tests {
		out, err := pt.Call(tt.tool, tt.in)
		switch {
		case tt.wantCode != "":
			if code(err) != tt.wantCode {
				t.Errorf("%s(%v) = %s, %v; want code %s", tt.tool, tt.in, out, err, tt.wantCode)
			}
		case err != nil:
			t.Errorf("%s(%v): %v", tt.tool, tt.in, err)
		case tt.want != "" && string(out) != tt.want:
			t.Errorf("%s(%v) = %s; want %s", tt.tool, tt.in, out, tt.want)
		}
	}
	mem, err := hosttest.CallAs[memOut](pt, "t.mem", keyIn{"shared/sdktest"})
	if err != nil || mem.Author != "sdktest" || mem.Text != "the sky is blue" || mem.Found != 2 {
		t.Errorf("t.mem = %+v, %v; want the record authored by the plugin, 2 found", mem, err)
	}
	if ev := pt.Emitted(); len(ev) != 1 || ev[0].Topic != "alerts" || string(ev[0].Payload) != `{"level":3}` {
		t.Errorf("emitted = %+v", ev)
	}
	if !strings.Contains(logs.String(), `msg=careful plugin=sdktest`) || !strings.Contains(logs.String(), "speed=3") || !strings.Contains(logs.String(), "!BADKEY=odd") {
		t.Errorf("log = %s", logs.String())
	}
	if now, err := hosttest.CallAs[valueOut](pt, "t.now", none{}); err != nil || now.Value == "" {
		t.Errorf("t.now = %+v, %v", now, err)
	}
	for want := 1; want <= 2; want++ {
		if out, err := pt.Poll("t.count"); err != nil || string(out) != fmt.Sprint(want) {
			t.Errorf("poll %d = %s, %v", want, out, err)
		}
	}
}

func TestNotGranted(t *testing.T) {
	_, err := hosttest.Load(t, sdkPlugin, hosttest.Grants(wire.Capabilities{Config: []string{"region"}}))
	want := `requests capabilities that are not granted: memory_read "shared", memory_write "shared/sdktest", emit "alerts", secrets "token", clock, actuator`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load = %v; want %q", err, want)
	}
}
