package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

// fixtureAPI is an in-test HTTP server answering as Open-Meteo's
// /v1/forecast documents, with the JSON fixtures in testdata: a contract
// test of the documented format, not a live test (no internet here). mode
// switches it to the bad answers the plugin must survive.
func fixtureAPI(t *testing.T, mode *atomic.Value) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	cur, err := os.ReadFile("testdata/current.json")
	if err != nil {
		t.Fatal(err)
	}
	hourly, err := os.ReadFile("testdata/hourly.json")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		q := r.URL.Query()
		if r.URL.Path != "/v1/forecast" || q.Get("latitude") == "" || q.Get("longitude") == "" || q.Get("timezone") != "UTC" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch m, _ := mode.Load().(string); m {
		case "429":
			w.Header().Set("Retry-After", "60")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		case "500":
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		case "html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>maintenance</body></html>"))
			return
		case "nofields":
			_, _ = w.Write([]byte(`{"current":{"time":"2026-12-01T12:00"}}`))
			return
		case "huge":
			_, _ = w.Write([]byte(`{"pad":"` + strings.Repeat("x", 3<<19) + `"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if q.Get("current") != "" {
			_, _ = w.Write(cur)
		} else {
			_, _ = w.Write(hourly)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func load(t *testing.T, srv *httptest.Server, cfg map[string]string) *plugintest.Plugin {
	grants := wire.Capabilities{HTTP: []string{"api.open-meteo.com", strings.TrimPrefix(srv.URL, "http://")}, Config: configKeys, Secrets: []string{"weather_api_key"}, Clock: true}
	cfg["base_url"] = srv.URL
	return plugintest.New(t, plugintest.Grants(grants), plugintest.Config(cfg))
}

func TestCurrentAndForecast(t *testing.T) {
	var mode atomic.Value
	srv, calls := fixtureAPI(t, &mode)
	pt := load(t, srv, map[string]string{"min_interval": "0s"})
	c, err := plugintest.CallAs[Current](pt, "weather.current", Place{Lat: 48.1173, Lon: 11.5166})
	if err != nil {
		t.Fatal(err)
	}
	if c.Temperature != 3.4 || c.Humidity != 81 || c.WindSpeed != 14.8 || c.WindDirection != 250 || c.Precipitation != 0.2 || c.Condition != "rain" || c.Stale ||
		c.Time.Format("2006-01-02T15:04Z07:00") != "2026-12-01T12:00Z" || c.Source != strings.TrimPrefix(srv.URL, "http://") || c.FetchedAt.IsZero() {
		t.Fatalf("current = %+v", c)
	}
	// A nearby place (same 0.01° cell) is served from cache.
	if _, err := pt.Call("weather.current", Place{Lat: 48.1201, Lon: 11.5199}); err != nil || calls.Load() != 1 {
		t.Fatalf("cache: %v, %d calls", err, calls.Load())
	}
	f, err := plugintest.CallAs[Forecast](pt, "weather.forecast", Place{Lat: 48.1173, Lon: 11.5166, Hours: 12})
	if err != nil {
		t.Fatal(err)
	}
	// Hour 5 has no temperature in the fixture: skipped, not reported as 0.
	if len(f.Hours) != 11 || f.Hours[0].Temperature != 1 || f.Hours[0].Condition != "clear" || f.Hours[3].Condition != "rain" || f.Hours[4].Condition != "thunderstorm" || f.Hours[5].Time.Hour() != 6 {
		t.Fatalf("forecast = %+v", f.Hours)
	}
	if _, err := pt.Call("weather.current", Place{Lat: 91, Lon: 0}); !isCode(err, wire.CodeInvalidArgument) {
		t.Fatalf("lat 91: %v", err)
	}
}

// TestBadAnswers: 429 (with Retry-After honoured), 500, HTML, JSON without
// the fields and an oversize body are counted by kind; a cached answer is
// served marked stale, and with nothing cached the call fails — no
// invented weather.
func TestBadAnswers(t *testing.T) {
	var mode atomic.Value
	srv, calls := fixtureAPI(t, &mode)
	pt := load(t, srv, map[string]string{"min_interval": "0s", "cache_ttl": "0s"})
	// The counters are the plugin process's; count from here.
	before, err := plugintest.CallAs[Status](pt, "weather.status", StatusIn{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pt.Call("weather.current", Place{Lat: 10, Lon: 10}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"500", "html", "nofields", "huge"} {
		mode.Store(m)
		c, err := plugintest.CallAs[Current](pt, "weather.current", Place{Lat: 10, Lon: 10})
		if err != nil || !c.Stale || c.Temperature != 3.4 {
			t.Fatalf("%s: %+v, %v; want the cached answer marked stale", m, c, err)
		}
		if _, err := pt.Call("weather.current", Place{Lat: 20, Lon: 20}); !isCode(err, wire.CodeUnavailable) {
			t.Fatalf("%s, nothing cached: %v; want unavailable", m, err)
		}
	}
	mode.Store("429")
	if _, err := pt.Call("weather.current", Place{Lat: 30, Lon: 30}); !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("429: %v", err)
	}
	sent := calls.Load()
	mode.Store("")
	if _, err := pt.Call("weather.current", Place{Lat: 31, Lon: 31}); !isCode(err, wire.CodeUnavailable) || calls.Load() != sent {
		t.Fatalf("during Retry-After: %v, %d new calls; want refused without calling", err, calls.Load()-sent)
	}
	st, err := plugintest.CallAs[Status](pt, "weather.status", StatusIn{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"http_5xx": 2, "not_json": 2, "missing_field": 2, "too_large": 2, "http_429": 1}
	for k, n := range want {
		if got := st.BadByKind[k] - before.BadByKind[k]; got != n {
			t.Errorf("bad_by_kind[%s] grew by %d; want %d (all: %v)", k, got, n, st.BadByKind)
		}
	}
	if st.Limited <= before.Limited || st.LastError == "" {
		t.Errorf("status = %+v", st)
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}

// TestReplay: with a recorded answer as the replay config, current and
// forecast come from it with no fetch (no http grant needed) and say so;
// a recording without the fields is refused naming the key.
func TestReplay(t *testing.T) {
	rec := `{"current":{"time":"2026-12-01T12:00","temperature_2m":3.4,"relative_humidity_2m":81,"precipitation":0.2,"weather_code":61,"wind_speed_10m":14.8,"wind_direction_10m":250},
	 "hourly":{"time":["2026-12-01T12:00","2026-12-01T13:00"],"temperature_2m":[3.4,3.9],"precipitation_probability":[80,60],"weather_code":[61,3],"wind_speed_10m":[14.8,12.0]}}`
	pt := plugintest.New(t, plugintest.Grants(wire.Capabilities{HTTP: []string{"api.open-meteo.com"}, Config: configKeys, Secrets: []string{"weather_api_key"}, Clock: true}),
		plugintest.Config(map[string]string{"replay": rec}))
	before, _ := plugintest.CallAs[Status](pt, "weather.status", StatusIn{}) // the cache is this test binary's
	c, err := plugintest.CallAs[Current](pt, "weather.current", Place{Lat: 52.52, Lon: 13.40})
	if err != nil || c.Temperature != 3.4 || c.Condition != "rain" || c.Source != "replay" || c.Stale {
		t.Fatalf("current = %+v, %v", c, err)
	}
	f, err := plugintest.CallAs[Forecast](pt, "weather.forecast", Place{Lat: 52.52, Lon: 13.40, Hours: 5})
	if err != nil || len(f.Hours) != 2 || f.Hours[1].Condition != "partly cloudy" || f.Source != "replay" {
		t.Fatalf("forecast = %+v, %v", f, err)
	}
	if st, _ := plugintest.CallAs[Status](pt, "weather.status", StatusIn{}); st.Calls != before.Calls {
		t.Fatalf("status %+v: the replay fetched", st)
	}
	bad := plugintest.New(t, plugintest.Config(map[string]string{"replay": `{"current":{}}`}))
	if _, err := bad.Call("weather.current", Place{Lat: 1, Lon: 1}); err == nil || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("a bad recording: %v; want a refusal naming replay", err)
	}
}
