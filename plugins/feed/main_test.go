package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depai/depai/plugins/internal/fetchcache"
	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

// fixture serves a file from testdata as the API would, or, per mode, the
// bad answers a feed must survive. It is an in-test HTTP server with
// fixtures in the documented formats (W3bstream project metrics as
// elizaOS's plugin-depin reads them; Nubila weather): a contract test, not
// a live one.
func fixture(t *testing.T, file string, mode *atomic.Value, gotKey *atomic.Value) *httptest.Server {
	t.Helper()
	body, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey.Store(r.Header.Get("X-Api-Key"))
		switch m, _ := mode.Load().(string); m {
		case "429":
			w.Header().Set("Retry-After", "120")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case "html":
			_, _ = w.Write([]byte("<!doctype html><title>502</title>"))
		case "500":
			http.Error(w, "down", http.StatusInternalServerError)
		default:
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func load(t *testing.T, srv *httptest.Server, cfg map[string]string, secrets map[string]string) *plugintest.Plugin {
	grants := wire.Capabilities{HTTP: []string{strings.TrimPrefix(srv.URL, "http://")}, Config: configKeys, Secrets: []string{secretKey}, Clock: true}
	return plugintest.New(t, plugintest.Grants(grants), plugintest.Config(cfg), plugintest.Secrets(secrets))
}

func TestDePINMetrics(t *testing.T) {
	var mode, key atomic.Value
	srv := fixture(t, "projects.json", &mode, &key)
	pt := load(t, srv, map[string]string{
		"url":    srv.URL + "/project",
		"fields": `[{"name":"geodnet_devices","path":"0.total_devices","unit":"devices"},{"name":"geod_price","path":"0.token_price","unit":"USD"},{"name":"iotex_devices","path":"1.total_devices","unit":"devices"}]`,
	}, nil)
	got, err := plugintest.CallAs[Readings](pt, "feed.get", GetIn{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Readings) != 3 || got.Readings[0].Value != 14210 || got.Readings[1].Value != 0.142 || got.Readings[1].Unit != "USD" || got.Readings[2].Value != 52000 ||
		got.Readings[0].Source != strings.TrimPrefix(srv.URL, "http://") || !got.Readings[0].Time.Equal(got.FetchedAt) || got.Stale {
		t.Fatalf("readings %+v", got)
	}
	b, err := pt.Poll("feed.readings")
	if err != nil || !strings.Contains(string(b), `"geodnet_devices"`) {
		t.Fatalf("sensor reading %s, %v", b, err)
	}
}

// TestNubilaWithKeyAndTime: the API key goes in the configured header, the
// reading's time is the answer's timestamp; bad answers are counted and the
// last good answer is served as stale.
func TestNubilaWithKeyAndTime(t *testing.T) {
	var mode, key atomic.Value
	srv := fixture(t, "nubila.json", &mode, &key)
	pt := load(t, srv, map[string]string{
		"url":            srv.URL + "/api/v1/weather?lat=48.12&lon=11.52",
		"fields":         `[{"name":"temperature","path":"data.temperature","unit":"°C"},{"name":"humidity","path":"data.humidity","unit":"%"}]`,
		"time_path":      "data.timestamp",
		"api_key_header": "x-api-key",
		"cache_ttl":      "0s",
		"min_interval":   "0s",
	}, map[string]string{secretKey: "k-123"})
	before, _ := plugintest.CallAs[fetchcache.Stats](pt, "feed.status", StatusIn{})
	got, err := plugintest.CallAs[Readings](pt, "feed.get", GetIn{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Readings[0].Value != 18.4 || !got.Readings[0].Time.Equal(time.Unix(1764590400, 0)) || key.Load() != "k-123" {
		t.Fatalf("readings %+v, key %v", got, key.Load())
	}
	for _, m := range []string{"html", "500", "429"} {
		mode.Store(m)
		got, err := plugintest.CallAs[Readings](pt, "feed.get", GetIn{})
		if err != nil || !got.Stale || got.Readings[0].Value != 18.4 {
			t.Fatalf("%s: %+v, %v; want the last good answer, stale", m, got, err)
		}
	}
	st, _ := plugintest.CallAs[fetchcache.Stats](pt, "feed.status", StatusIn{})
	for k, n := range map[string]int{"not_json": 1, "http_5xx": 1, "http_429": 1} {
		if st.BadByKind[k]-before.BadByKind[k] != n {
			t.Errorf("bad_by_kind[%s] grew by %d; want %d", k, st.BadByKind[k]-before.BadByKind[k], n)
		}
	}
}

func TestMissingFieldAndBadConfig(t *testing.T) {
	var mode, key atomic.Value
	srv := fixture(t, "nubila.json", &mode, &key)
	pt := load(t, srv, map[string]string{"url": srv.URL + "/x", "fields": `[{"name":"t","path":"data.temperatur"}]`, "min_interval": "0s"}, nil)
	if _, err := pt.Call("feed.get", GetIn{}); !isCode(err, wire.CodeUnavailable) || !strings.Contains(err.Error(), "data.temperatur") {
		t.Fatalf("a misspelt field: %v; want unavailable naming it", err)
	}
	for _, cfg := range []map[string]string{
		{"url": "ftp://x", "fields": `[{"name":"t","path":"a"}]`},
		{"url": srv.URL, "fields": `[]`},
		{"url": srv.URL, "fields": `[{"name":"t","path":"a"}]`, "api_key_header": "x-api-key"},
	} {
		bad := load(t, srv, cfg, nil)
		if _, err := bad.Call("feed.get", GetIn{}); !isCode(err, wire.CodeInvalidArgument) {
			t.Errorf("config %v: %v; want invalid_argument", cfg, err)
		}
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}
