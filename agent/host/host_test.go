package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

const plugins = "../../examples/plugins/"

// syncBuffer is a log sink the test can read while plugins write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type emitted struct{ plugin, topic, payload string }

// TestDispatcher drives every host method through the policy engine for a
// loaded plugin, granted and not. The HTTP servers are real, on loopback.
func TestDispatcher(t *testing.T) {
	ctx := context.Background()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("hi there")) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { w.Write(bytes.Repeat([]byte("x"), 10000)) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	allowed := httptest.NewServer(mux)
	defer allowed.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("secret stuff")) }))
	defer other.Close()
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.URL+"/x", http.StatusFound) })
	mux.HandleFunc("/home", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/hello", http.StatusFound) })

	var logs syncBuffer
	var mu sync.Mutex
	var events []emitted
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h := wasmtest.NewHost(t, host.Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Emit: func(plugin, topic string, payload json.RawMessage) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, emitted{plugin, topic, string(payload)})
			return nil
		},
		Now: func() time.Time { return now },
	})
	srvHost := strings.TrimPrefix(allowed.URL, "http://")
	_, err := h.Load(ctx, host.PluginSpec{
		Name: "p", Path: wasmtest.Build(t, plugins+"hello"),
		Grants: wire.Capabilities{
			HTTP: []string{srvHost}, Emit: []string{"alerts"}, Config: []string{"region"},
			Secrets: []string{"token"}, Clock: true,
			MemoryRead: []string{"shared"}, MemoryWrite: []string{"shared/p"},
		},
		Config:  map[string]string{"region": "eu-1", "hidden": "x"},
		Secrets: map[string]string{"token": "s3cr3t", "root": "nope"},
		Limits:  host.Limits{MaxMessageBytes: 4096, CallTimeout: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	var id string // of the record memory.put stores
	tests := []struct {
		name, method, payload string
		code                  string // expected error code, "" for success
		want                  string // substring of the result or error message
	}{
		{"log", wire.HostLog, `{"level":"warn","msg":"from the plugin","attrs":{"k":1}}`, "", "{}"},
		{"log bad", wire.HostLog, `{"level":`, wire.CodeInvalidArgument, "log: arguments"},
		{"config", wire.HostConfig, `{"key":"region"}`, "", `{"value":"eu-1"}`},
		{"config ungranted", wire.HostConfig, `{"key":"hidden"}`, wire.CodeDenied, `"hidden": not granted`},
		{"secret", wire.HostSecret, `{"key":"token"}`, "", `{"value":"s3cr3t"}`},
		{"secret ungranted", wire.HostSecret, `{"key":"root"}`, wire.CodeDenied, `"root"`},
		{"clock", wire.HostClock, `{}`, "", fmt.Sprintf(`{"unix_nano":%d}`, now.UnixNano())},
		{"emit", wire.HostEmit, `{"topic":"alerts","payload":{"level":2}}`, "", "{}"},
		{"emit ungranted", wire.HostEmit, `{"topic":"billing"}`, wire.CodeDenied, `"billing"`},
		{"fetch", wire.HostHTTPFetch, `{"url":"` + allowed.URL + `/hello"}`, "", `"body":"aGkgdGhlcmU="`},
		{"fetch redirect within", wire.HostHTTPFetch, `{"url":"` + allowed.URL + `/home"}`, "", `"body":"aGkgdGhlcmU="`},
		{"fetch other host", wire.HostHTTPFetch, `{"url":"` + other.URL + `/x"}`, wire.CodeDenied, "host not granted"},
		{"fetch redirect away", wire.HostHTTPFetch, `{"url":"` + allowed.URL + `/away"}`, wire.CodeDenied, "redirect"},
		{"fetch scheme", wire.HostHTTPFetch, `{"url":"file:///etc/passwd"}`, wire.CodeInvalidArgument, "absolute http(s) URL"},
		{"fetch too big", wire.HostHTTPFetch, `{"url":"` + allowed.URL + `/big"}`, wire.CodeTooLarge, "4096"},
		{"fetch slow", wire.HostHTTPFetch, `{"url":"` + allowed.URL + `/slow","timeout":100000000}`, wire.CodeTimeout, "no answer within 100ms"},
		{"put", wire.HostMemoryPut, `{"records":[{"namespace":"shared/p/x","kind":"observation","text":"seen","author":"someone-else"}]}`, "", `"author":"p"`},
		{"put ungranted", wire.HostMemoryPut, `{"records":[{"namespace":"shared","kind":"observation","text":"x"}]}`, wire.CodeDenied, `"shared"`},
		{"put audit", wire.HostMemoryPut, `{"records":[{"namespace":"shared/p","kind":"audit","text":"forged"}]}`, wire.CodeDenied, "audit"},
		{"query", wire.HostMemoryQuery, `{"namespace":"shared"}`, "", `"text":"seen"`},
		{"query ungranted", wire.HostMemoryQuery, `{"namespace":"private"}`, wire.CodeDenied, `"private"`},
		{"query no namespace", wire.HostMemoryQuery, `{}`, wire.CodeInvalidArgument, "namespace is required"},
		{"pay", wire.HostPayQuote, `{}`, wire.CodeDenied, "payment not granted"},
		{"unknown", "teleport", `{}`, wire.CodeNotFound, `"teleport"`},
	}
	denials := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, werr := h.HostCall(ctx, "p", tt.method, []byte(tt.payload))
			if tt.code == "" {
				if werr != nil || !strings.Contains(string(out), tt.want) {
					t.Fatalf("= %s, %v; want a result containing %s", out, werr, tt.want)
				}
				if tt.method == wire.HostMemoryPut {
					var recs wire.MemoryRecords
					_ = json.Unmarshal(out, &recs)
					id = recs.Records[0].ID
				}
				return
			}
			if werr == nil || werr.Code != tt.code || !strings.Contains(werr.Message, tt.want) {
				t.Fatalf("= %s, %v; want code %s saying %q", out, werr, tt.code, tt.want)
			}
			if tt.code == wire.CodeDenied {
				denials++
			}
		})
	}
	if out, werr := h.HostCall(ctx, "p", wire.HostMemoryGet, []byte(`{"id":"`+id+`"}`)); werr != nil || !strings.Contains(string(out), `"text":"seen"`) {
		t.Errorf("memory.get = %s, %v", out, werr)
	}
	if _, werr := h.HostCall(ctx, "ghost", wire.HostLog, []byte(`{}`)); werr == nil || werr.Code != wire.CodeUnavailable {
		t.Errorf("host call for a plugin that is not loaded: %v", werr)
	}
	mu.Lock()
	if len(events) != 1 || events[0] != (emitted{"p", "alerts", `{"level":2}`}) {
		t.Errorf("emitted = %+v", events)
	}
	mu.Unlock()
	// Without a Gate that audits, each denial is a log line — once per
	// method and target within the window: the redirect to the other host
	// repeats the denial of that host and is coalesced with it.
	if n := strings.Count(logs.String(), "plugin capability denied"); n != denials-1 {
		t.Errorf("%d denial log lines for %d denials, one of them a repeat\n%s", n, denials, logs.String())
	}
	if !strings.Contains(logs.String(), "from the plugin") || !strings.Contains(logs.String(), "plugin=p") {
		t.Errorf("the plugin's log line is missing or untagged:\n%s", logs.String())
	}
}

// gate is a policy.Gate that records what it is asked and denies the
// topics in deny; it is also a DenialAuditor. The real engine is
// agent/policy's; this one lets the host's side of the contract be seen.
type gate struct {
	deny string

	mu      sync.Mutex
	asked   []policy.Action
	done    []string // outcome per allowed action: "ok" or the error
	audited []string // "method target reason xN" per DenialAuditor record
}

func (g *gate) Authorize(_ context.Context, a policy.Action) (func(json.RawMessage, error), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, a)
	if a.Target == g.deny {
		return nil, wire.Errorf(wire.CodeDenied, "e-stop engaged")
	}
	return func(_ json.RawMessage, err error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if err != nil {
			g.done = append(g.done, err.Error())
		} else {
			g.done = append(g.done, "ok")
		}
	}, nil
}

func (g *gate) Denied(_ context.Context, a policy.Action, reason string, count int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.audited = append(g.audited, fmt.Sprintf("%s %s %s x%d", a.Name, a.Target, reason, count))
}

func (g *gate) snapshot() (asked []policy.Action, done, audited []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.asked), slices.Clone(g.done), slices.Clone(g.audited)
}

// TestGate: every host call with a side effect asks the Gate as the plugin,
// a refusal carries the Gate's reason, done hears the outcome, and denials
// — the host's and repeats of the Gate's — are coalesced into one audit
// record per window with a count (one call used to write 4,779 records).
// The host writes no audit record itself.
func TestGate(t *testing.T) {
	ctx := context.Background()
	store, err := memory.Open(ctx, memory.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	g := &gate{deny: "stop"}
	const window = 300 * time.Millisecond
	h := wasmtest.NewHost(t, host.Config{Agent: "rover", Store: store, Gate: g, Rates: host.Rates{DenialWindow: window},
		Emit: func(string, string, json.RawMessage) error { return nil }})
	if _, err := h.Load(ctx, host.PluginSpec{Name: "p", Path: wasmtest.Build(t, plugins+"hello"),
		Grants: wire.Capabilities{Emit: []string{"go", "stop"}, MemoryWrite: []string{"shared/p"}}}); err != nil {
		t.Fatal(err)
	}
	if _, werr := h.HostCall(ctx, "p", wire.HostEmit, []byte(`{"topic":"go"}`)); werr != nil {
		t.Fatal(werr)
	}
	if _, werr := h.HostCall(ctx, "p", wire.HostMemoryPut, []byte(`{"records":[{"namespace":"shared/p","kind":"observation","text":"x"}]}`)); werr != nil {
		t.Fatal(werr)
	}
	for range 50 {
		if _, werr := h.HostCall(ctx, "p", wire.HostEmit, []byte(`{"topic":"stop"}`)); werr == nil || werr.Code != wire.CodeDenied || !strings.Contains(werr.Message, "e-stop engaged") {
			t.Fatalf("emit on a topic the Gate refuses = %v; want denied with its reason", werr)
		}
		if _, werr := h.HostCall(ctx, "p", wire.HostSecret, []byte(`{"key":"root"}`)); werr == nil || werr.Code != wire.CodeDenied {
			t.Fatalf("secret not granted = %v", werr)
		}
	}
	time.Sleep(2 * window)
	asked, done, audited := g.snapshot()
	want := []policy.Action{
		{Agent: "rover", Principal: policy.Principal{Kind: policy.PrincipalPlugin, ID: "p"}, Kind: policy.ActionHost, Name: wire.HostEmit, Target: "go", Effect: wire.EffectWrite},
		{Agent: "rover", Principal: policy.Principal{Kind: policy.PrincipalPlugin, ID: "p"}, Kind: policy.ActionHost, Name: wire.HostMemoryPut, Target: "shared/p", Effect: wire.EffectWrite},
		{Agent: "rover", Principal: policy.Principal{Kind: policy.PrincipalPlugin, ID: "p"}, Kind: policy.ActionHost, Name: wire.HostEmit, Target: "stop", Effect: wire.EffectWrite},
	}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("the Gate was asked\n%v\nwant (the refused emit once per window)\n%v", asked, want)
	}
	if !slices.Equal(done, []string{"ok", "ok"}) {
		t.Errorf("outcomes = %v", done)
	}
	wantAudit := []string{"secret root not granted x1", "emit stop e-stop engaged x49", "secret root not granted x49"}
	slices.Sort(audited)
	slices.Sort(wantAudit)
	if !slices.Equal(audited, wantAudit) {
		t.Errorf("audited %v; want %v", audited, wantAudit)
	}
	for r, err := range store.Query(ctx, memory.Query{Namespace: "audit"}) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("the host wrote an audit record: %+v", r)
	}
}

func TestLoadRefusals(t *testing.T) {
	ctx := context.Background()
	pins := t.TempDir()
	h := wasmtest.NewHost(t, host.Config{PinDir: pins})
	hello := wasmtest.Build(t, plugins+"hello")
	b, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte(`{"not":"a plugin"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(exe, []byte("\x7fELF...."), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec host.PluginSpec
		want string
	}{
		{"not granted", host.PluginSpec{Path: wasmtest.Build(t, plugins+"notes"), Grants: wire.Capabilities{MemoryRead: []string{"notes"}}},
			`requests capabilities that are not granted: memory_write "notes"`},
		{"pin", host.PluginSpec{Path: hello, SHA256: strings.Repeat("0", 64)}, "has SHA-256 " + hex.EncodeToString(sum[:]) + " but the config pins 000"},
		{"junk", host.PluginSpec{Path: junk}, "neither a WASM module nor a native executable"},
		{"no transport", host.PluginSpec{Path: exe, Kind: host.KindProcess}, "no process transport configured"},
		{"process not asked for", host.PluginSpec{Path: exe}, "is a native executable; a process plugin must be asked for by its kind"},
		{"kind mismatch", host.PluginSpec{Path: hello, Kind: host.KindProcess}, "the config says kind process but"},
		{"missing", host.PluginSpec{Path: filepath.Join(t.TempDir(), "nope.wasm")}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Name = "bad"
			_, err := h.Load(ctx, tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `plugin "bad"`) {
				t.Fatalf("Load = %v; want an error naming the plugin and saying %q", err, tt.want)
			}
			if len(h.Plugins()) != 0 {
				t.Fatal("a refused plugin is listed")
			}
		})
	}
	if _, err := h.Load(ctx, host.PluginSpec{Name: "pinned", Path: hello, SHA256: strings.ToUpper(hex.EncodeToString(sum[:]))}); err != nil {
		t.Fatalf("correctly pinned: %v", err)
	}
	// The transport ran a private copy of exactly the verified bytes.
	pinned, err := os.ReadFile(filepath.Join(pins, hex.EncodeToString(sum[:])))
	if err != nil || !bytes.Equal(pinned, b) {
		t.Fatalf("pinned copy: %v (equal %v)", err, bytes.Equal(pinned, b))
	}
	if fi, err := os.Stat(pins); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("pin dir mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if _, err := h.Load(ctx, host.PluginSpec{Name: "pinned", Path: hello}); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Fatalf("second load under one name: %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	readings := make(chan string, 100)
	h := wasmtest.NewHost(t, host.Config{OnReading: func(plugin, sensor string, payload json.RawMessage, err error) {
		if err != nil {
			readings <- err.Error()
			return
		}
		select {
		case readings <- plugin + " " + sensor + " " + string(payload):
		default:
		}
	}})
	p, err := h.Load(ctx, host.PluginSpec{Name: "c", Path: wasmtest.Build(t, plugins+"chaos")})
	if err != nil {
		t.Fatal(err)
	}
	first, second := <-readings, <-readings
	if first != `c chaos.tick {"n":1}` || second != `c chaos.tick {"n":2}` {
		t.Fatalf("readings %q, %q", first, second)
	}
	if ps := h.Plugins(); len(ps) != 1 || ps[0] != p {
		t.Fatalf("Plugins = %v", ps)
	}
	p2, err := h.Reload(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := h.Plugin("c"); got != p2 || p2 == p {
		t.Fatal("Reload did not swap the plugin in")
	}
	// The old plugin is closed; the new one serves.
	if _, err := p.Tools()[0].Call(ctx, json.RawMessage(`{"text":"x"}`)); err == nil {
		t.Error("the old plugin still answers after reload")
	}
	echo := toolNamed(t, p2, "chaos.echo")
	if out, err := echo.Call(ctx, json.RawMessage(`{"text":"x"}`)); err != nil || string(out) != `{"text":"x"}` {
		t.Fatalf("echo after reload = %s, %v", out, err)
	}
	if err := h.Unload(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := h.Unload(ctx, "c"); err == nil {
		t.Error("second Unload succeeded")
	}
	if len(h.Plugins()) != 0 {
		t.Error("unloaded plugin is listed")
	}
	if _, werr := h.HostCall(ctx, "c", wire.HostLog, []byte(`{}`)); werr == nil {
		t.Error("an unloaded plugin can still call the host")
	}
}

func toolNamed(t *testing.T, p *host.Plugin, name string) interface {
	Call(context.Context, json.RawMessage) (json.RawMessage, error)
} {
	t.Helper()
	if tl, ok := p.Tool(name); ok {
		return tl
	}
	t.Fatalf("no tool %s", name)
	return nil
}
