package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/internal/wasmbuild"
	"github.com/depai/depai/sdk/wire"
)

// TestGeneratedCodecs: a plugin built by agent/host/build decodes and
// encodes its tools' types with code generated for them (its functions
// are in the module's name section), gives the reflective codec's answers
// where that code declines (a key under another case, a whole number
// written as 2.0, a required field missing from a call the host did not
// check, a map), and a plugin whose types the generated code cannot name
// still builds and answers, with the reflective codec.
func TestGeneratedCodecs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two plugins")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := New(Config{CacheDir: wasmbuild.CacheDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	h := host.New(host.Config{Logger: quiet})
	ctx := context.Background()
	load := func(pkg string, generated bool) host.Instance {
		t.Helper()
		path := wasmbuild.Build(t, "testdata/"+pkg)
		code, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(code, []byte("main.zzDepaiCodec")); got != generated {
			t.Errorf("%s: generated codecs in the module: %v, want %v", pkg, got, generated)
		}
		inst, err := tr.Load(ctx, host.LoadSpec{Name: pkg, Path: path, Host: h})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = inst.Close(ctx) })
		return inst
	}
	inst := load("codecs", true)
	for _, tc := range []struct {
		method, in string
		checked    bool
		want       string // the result, or the error message's start
	}{
		{"codecs.echo", `{"name":"a<b","count":2,"tags":["x","y"],"ratio":0.5}`, true, `{"name":"a\u003cb","count":2,"tags":["x","y"],"ratio":0.5}`},
		{"codecs.echo", `{"name":"a"}`, true, `{"name":"a"}`},
		{"codecs.echo", `{"NAME":"folded","count":2.0}`, true, `{"name":"folded","count":2}`},
		{"codecs.echo", `{"count":1}`, false, `arguments for codecs.echo: json: missing property "name" of main.Item`},
		{"codecs.echo", `{"name":"a","tags":[1]}`, true, `arguments for codecs.echo: json: cannot unmarshal number into Go struct field`},
		{"codecs.count", `{"name":"a","tags":["x","y","x"]}`, true, `{"by_tag":{"x":2,"y":1}}`},
	} {
		r := inst.Call(ctx, wire.Call{Method: tc.method, Payload: json.RawMessage(tc.in), Checked: tc.checked})
		got := string(r.Payload)
		if r.Error != nil {
			got = r.Error.Message
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s %s = %s, %v; want %s", tc.method, tc.in, r.Payload, r.Error, tc.want)
		}
	}
	local := load("codecslocal", false)
	if r := local.Call(ctx, wire.Call{Method: "codecslocal.echo", Payload: json.RawMessage(`{"name":"a"}`), Checked: true}); r.Error != nil || string(r.Payload) != `{"name":"a"}` {
		t.Errorf("codecslocal.echo = %s, %v", r.Payload, r.Error)
	}
}
