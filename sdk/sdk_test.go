package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

// The plugin under test: one tool per host capability, run by plugintest
// behind the real host.

type keyIn struct {
	Key string `json:"key"`
}

type valueOut struct {
	Value string `json:"value"`
}

type fetchIn struct {
	URL string `json:"url"`
}

type fetchOut struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
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

func init() {
	sdk.Plugin("sdktest", "1.2.3")
	sdk.Requests(requests)
	sdk.Tool("t.config", "config value", func(ctx context.Context, in keyIn) (valueOut, error) {
		v, err := sdk.Config(ctx, in.Key)
		return valueOut{v}, err
	})
	sdk.Tool("t.secret", "secret value", func(ctx context.Context, in keyIn) (valueOut, error) {
		v, err := sdk.Secret(ctx, in.Key)
		return valueOut{v}, err
	})
	sdk.Tool("t.now", "host clock", func(ctx context.Context, _ none) (valueOut, error) {
		now, err := sdk.Now(ctx)
		return valueOut{now.UTC().Format(time.RFC3339)}, err
	})
	sdk.Tool("t.emit", "publish", func(ctx context.Context, in keyIn) (none, error) {
		return none{}, sdk.Emit(ctx, in.Key, map[string]int{"level": 3})
	})
	sdk.Tool("t.fetch", "HTTP GET", func(ctx context.Context, in fetchIn) (fetchOut, error) {
		r, err := sdk.HTTPFetch(ctx, sdk.Request{URL: in.URL})
		return fetchOut{r.Status, string(r.Body)}, err
	})
	sdk.Tool("t.mem", "put, get and query", func(ctx context.Context, in keyIn) (memOut, error) {
		recs, err := sdk.MemoryPut(ctx, sdk.Record{Namespace: in.Key, Kind: "observation", Text: "the sky is blue", Author: "forged"})
		if err != nil {
			return memOut{}, err
		}
		got, err := sdk.MemoryGet(ctx, recs[0].ID)
		if err != nil {
			return memOut{}, err
		}
		all, err := sdk.MemoryQuery(ctx, sdk.Query{Namespace: "shared"})
		return memOut{ID: got.ID, Author: got.Author, Text: got.Text, Found: len(all)}, err
	})
	sdk.Tool("t.log", "log", func(ctx context.Context, _ none) (none, error) {
		sdk.Log(ctx, slog.LevelWarn, "careful", "speed", 3, "odd")
		return none{}, nil
	})
	sdk.Tool("t.coded", "a wrapped coded error", func(context.Context, none) (none, error) {
		return none{}, fmt.Errorf("looking: %w", sdk.Errorf(wire.CodeNotFound, "no such widget"))
	})
	sdk.Tool("t.plain", "an uncoded error", func(context.Context, none) (none, error) {
		return none{}, errors.New("boom")
	})
	sdk.Tool("t.move", "an actuator", func(context.Context, none) (none, error) { return none{}, nil }, sdk.Actuator())
	n := 0
	sdk.Sensor("t.count", "counts polls", time.Second, func(context.Context) (int, error) { n++; return n, nil })
}

func code(err error) string {
	if we, ok := errors.AsType[*wire.Error](err); ok {
		return we.Code
	}
	return fmt.Sprintf("not a wire error: %v", err)
}

func TestManifest(t *testing.T) {
	m := plugintest.New(t).Manifest()
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
	pt := plugintest.New(t,
		plugintest.Grants(grants),
		plugintest.Config(map[string]string{"region": "eu-1"}),
		plugintest.Secrets(map[string]string{"token": "s3cr3t", "other": "x"}),
		plugintest.Logger(slog.New(slog.NewTextHandler(&logs, nil))),
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
	mem, err := plugintest.CallAs[memOut](pt, "t.mem", keyIn{"shared/sdktest"})
	if err != nil || mem.Author != "sdktest" || mem.Text != "the sky is blue" || mem.Found != 2 {
		t.Errorf("t.mem = %+v, %v; want the record authored by the plugin, 2 found", mem, err)
	}
	if ev := pt.Emitted(); len(ev) != 1 || ev[0].Topic != "alerts" || string(ev[0].Payload) != `{"level":3}` {
		t.Errorf("emitted = %+v", ev)
	}
	if !strings.Contains(logs.String(), `msg=careful plugin=sdktest`) || !strings.Contains(logs.String(), "speed=3") || !strings.Contains(logs.String(), "!BADKEY=odd") {
		t.Errorf("log = %s", logs.String())
	}
	if now, err := plugintest.CallAs[valueOut](pt, "t.now", none{}); err != nil || now.Value == "" {
		t.Errorf("t.now = %+v, %v", now, err)
	}
	for want := 1; want <= 2; want++ {
		if out, err := pt.Poll("t.count"); err != nil || string(out) != fmt.Sprint(want) {
			t.Errorf("poll %d = %s, %v", want, out, err)
		}
	}
}

func TestNotGranted(t *testing.T) {
	_, err := plugintest.Load(t, plugintest.Grants(wire.Capabilities{Config: []string{"region"}}))
	want := `requests capabilities that are not granted: memory_read "shared", memory_write "shared/sdktest", emit "alerts", secrets "token", clock, actuator`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load = %v; want %q", err, want)
	}
}

func TestNoHost(t *testing.T) {
	_, err := sdk.Config(context.Background(), "region")
	if code(err) != wire.CodeUnavailable || !strings.Contains(err.Error(), "no host in context") {
		t.Fatalf("Config without a host: %v", err)
	}
}

// ExampleTool registers a typed tool. A plugin does this in init() and
// calls sdk.Main() from main.
func ExampleTool() {
	type In struct {
		Celsius float64 `json:"celsius" jsonschema:"temperature in °C"`
	}
	type Out struct {
		Fahrenheit float64 `json:"fahrenheit"`
	}
	sdk.Plugin("thermo", "0.1.0")
	sdk.Tool("thermo.convert", "Converts °C to °F.", func(_ context.Context, in In) (Out, error) {
		return Out{Fahrenheit: in.Celsius*9/5 + 32}, nil
	})
}
