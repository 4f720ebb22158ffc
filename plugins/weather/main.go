// Command weather is the depai plugin for current weather and hourly
// forecasts by latitude and longitude, from an Open-Meteo compatible API
// (https://open-meteo.com/en/docs: GET /v1/forecast?latitude=…&longitude=…
// &current=…&hourly=…). Readings carry their source and time.
//
// It needs nothing but the host's http.fetch to the granted API host and
// the clock, so it runs as a WASM plugin — sandboxed, the default for code
// that needs no device or socket of its own.
//
// Answers are cached per place (0.01°, about 1 km) for cache_ttl, and the
// upstream is asked at most once per min_interval; a 429 is honoured for its
// Retry-After. Bad answers — 429, 5xx, HTML, oversize, JSON without the
// fields — are counted in weather.status, and a cached answer is served
// while they last (marked stale), never an invented one.
//
// Config (granted keys): base_url (default https://api.open-meteo.com),
// cache_ttl (default 10m), min_interval (default 2s), replay (a recorded
// answer of the API, JSON with current and hourly: it answers every place
// and nothing is fetched — for demos and tests with no network; a WASM
// plugin has no files, so the recording is the value itself). The secret
// weather_api_key, when granted and set, is sent as the apikey parameter
// (Open-Meteo's commercial endpoints); it is optional, so the plugin does
// not request it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/depai/depai/plugins/internal/fetchcache"
	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

const defaultBase = "https://api.open-meteo.com"

var configKeys = []string{"base_url", "cache_ttl", "min_interval", "replay"}

// replaySource is the source of answers from the replay config.
const replaySource = "replay"

func init() {
	sdk.Plugin("weather", "0.1.0")
	sdk.Requests(wire.Capabilities{
		HTTP:   []string{"api.open-meteo.com"},
		Config: configKeys,
		// The secret weather_api_key is not requested: the free API needs
		// none, so a config that does not grant it still loads the plugin.
		Clock: true,
	})
	sdk.Tool("weather.current", "Current weather at a place: temperature, wind, precipitation, condition.", current)
	sdk.Tool("weather.forecast", "Hourly forecast at a place for the next hours.", forecast)
	sdk.Tool("weather.status", "Upstream calls, cache hits and refused answers by kind.", status)
}

func main() { sdk.Main() }

// Place is a tool's input.
type Place struct {
	Lat   float64 `json:"lat" jsonschema:"latitude, degrees north"`
	Lon   float64 `json:"lon" jsonschema:"longitude, degrees east"`
	Hours int     `json:"hours,omitempty" jsonschema:"forecast hours (weather.forecast only; default 24, at most 168)"`
}

// Current is weather.current's answer.
type Current struct {
	Time          time.Time `json:"time" jsonschema:"the observation time the source gives (UTC)"`
	Temperature   float64   `json:"temperature" jsonschema:"°C at 2 m"`
	Humidity      float64   `json:"humidity" jsonschema:"relative, % at 2 m"`
	WindSpeed     float64   `json:"wind_speed" jsonschema:"km/h at 10 m"`
	WindDirection float64   `json:"wind_direction" jsonschema:"degrees the wind comes from"`
	Precipitation float64   `json:"precipitation" jsonschema:"mm in the preceding interval"`
	Code          int       `json:"weather_code" jsonschema:"WMO weather code"`
	Condition     string    `json:"condition"`
	Source        string    `json:"source" jsonschema:"the API host answering"`
	FetchedAt     time.Time `json:"fetched_at"`
	Stale         bool      `json:"stale" jsonschema:"served from cache because the upstream failed or was rate limited"`
}

// Hour is one forecast hour.
type Hour struct {
	Time                time.Time `json:"time"`
	Temperature         float64   `json:"temperature" jsonschema:"°C"`
	PrecipitationChance float64   `json:"precipitation_probability" jsonschema:"%"`
	WindSpeed           float64   `json:"wind_speed" jsonschema:"km/h"`
	Code                int       `json:"weather_code"`
	Condition           string    `json:"condition"`
}

// Forecast is weather.forecast's answer.
type Forecast struct {
	Hours     []Hour    `json:"hours"`
	Source    string    `json:"source"`
	FetchedAt time.Time `json:"fetched_at"`
	Stale     bool      `json:"stale"`
}

// Status is weather.status's answer.
type Status = fetchcache.Stats

// cache is the plugin's answers and counters. The SDK registers handlers
// in init() with no per-instance hook, so the process (or WASM instance)
// holds it here.
var cache fetchcache.Cache

type settings struct {
	base     *url.URL
	ttl, gap time.Duration
	key      string
	replay   []byte
}

// source names where answers come from.
func (s settings) source() string {
	if s.replay != nil {
		return replaySource
	}
	return s.base.Host
}

func config(ctx context.Context) (settings, error) {
	s := settings{ttl: 10 * time.Minute, gap: 2 * time.Second}
	get := func(k string) (string, bool, error) {
		v, err := sdk.Config(ctx, k)
		if we, ok := errors.AsType[*wire.Error](err); ok && we.Code == wire.CodeNotFound {
			return "", false, nil
		}
		return v, err == nil, err
	}
	base := defaultBase
	if v, ok, err := get("base_url"); err != nil {
		return s, err
	} else if ok {
		base = v
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return s, sdk.Errorf(wire.CodeInvalidArgument, "weather config base_url %q: want http(s)://host[:port]", base)
	}
	s.base = u
	for key, dst := range map[string]*time.Duration{"cache_ttl": &s.ttl, "min_interval": &s.gap} {
		v, ok, err := get(key)
		if err != nil {
			return s, err
		}
		if ok {
			d, perr := time.ParseDuration(v)
			if perr != nil || d < 0 {
				return s, sdk.Errorf(wire.CodeInvalidArgument, "weather config %s %q: want a Go duration such as 10m", key, v)
			}
			*dst = d
		}
	}
	if v, ok, err := get("replay"); err != nil {
		return s, err
	} else if ok {
		s.replay = []byte(v)
		for _, kind := range []string{"current", "hourly"} {
			if err := check(kind, s.replay); err != nil {
				return s, sdk.Errorf(wire.CodeInvalidArgument, "weather config replay: want a recorded answer with current and hourly: %v", err)
			}
		}
	}
	if k, err := sdk.Secret(ctx, "weather_api_key"); err == nil {
		s.key = k
	} else if we, ok := errors.AsType[*wire.Error](err); !ok || (we.Code != wire.CodeNotFound && we.Code != wire.CodeDenied) {
		return s, err
	}
	return s, nil
}

func checkPlace(p Place) error {
	if math.IsNaN(p.Lat) || p.Lat < -90 || p.Lat > 90 || math.IsNaN(p.Lon) || p.Lon < -180 || p.Lon > 180 {
		return sdk.Errorf(wire.CodeInvalidArgument, "place %v,%v: want lat in [-90, 90] and lon in [-180, 180]", p.Lat, p.Lon)
	}
	return nil
}

// get returns the API's answer for kind ("current" or "hourly") at p,
// from cache when fresh, and whether it is stale.
func get(ctx context.Context, kind string, p Place) ([]byte, time.Time, bool, error) {
	cfg, err := config(ctx)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	if err := checkPlace(p); err != nil {
		return nil, time.Time{}, false, err
	}
	now, err := sdk.Now(ctx)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	if cfg.replay != nil {
		return cfg.replay, now, false, nil
	}
	lat, lon := math.Round(p.Lat*100)/100, math.Round(p.Lon*100)/100
	key := fmt.Sprintf("%s|%s|%.2f|%.2f", cfg.base, kind, lat, lon)
	q := url.Values{"latitude": {strconv.FormatFloat(lat, 'f', 2, 64)}, "longitude": {strconv.FormatFloat(lon, 'f', 2, 64)}, "timezone": {"UTC"}}
	if kind == "current" {
		q.Set("current", "temperature_2m,relative_humidity_2m,precipitation,weather_code,wind_speed_10m,wind_direction_10m")
	} else {
		q.Set("hourly", "temperature_2m,precipitation_probability,weather_code,wind_speed_10m")
		q.Set("forecast_hours", "168")
	}
	if cfg.key != "" {
		q.Set("apikey", cfg.key)
	}
	u := *cfg.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/forecast"
	u.RawQuery = q.Encode()
	fetch := func() (sdk.Response, error) {
		return sdk.HTTPFetch(ctx, sdk.Request{URL: u.String(), Header: map[string][]string{"Accept": {"application/json"}}, Timeout: 10 * time.Second})
	}
	a, err := cache.Get(key, cfg.base.String(), fetchcache.Policy{TTL: cfg.ttl, Gap: cfg.gap}, now, fetch, func(b []byte) error { return check(kind, b) })
	if err != nil {
		return nil, time.Time{}, false, err
	}
	return a.Body, a.Fetched, a.Stale, nil
}

// check accepts a body that is JSON with the fields kind needs.
func check(kind string, body []byte) error {
	var err error
	if kind == "current" {
		_, err = decodeCurrent(body)
	} else {
		_, err = decodeHourly(body, 1)
	}
	if err != nil {
		k := "missing_field"
		if !json.Valid(body) {
			k = "not_json"
		}
		return &fetchcache.CheckError{Kind: k, Err: err}
	}
	return nil
}

type currentDoc struct {
	Current *struct {
		Time          string   `json:"time"`
		Temperature   *float64 `json:"temperature_2m"`
		Humidity      *float64 `json:"relative_humidity_2m"`
		Precipitation *float64 `json:"precipitation"`
		Code          *int     `json:"weather_code"`
		WindSpeed     *float64 `json:"wind_speed_10m"`
		WindDirection *float64 `json:"wind_direction_10m"`
	} `json:"current"`
}

// openMeteoTime is the API's time format with timezone=UTC.
const openMeteoTime = "2006-01-02T15:04"

func decodeCurrent(b []byte) (Current, error) {
	var d currentDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return Current{}, fmt.Errorf("weather: answer is not the documented JSON: %w", err)
	}
	c := d.Current
	if c == nil || c.Temperature == nil || c.Code == nil || c.WindSpeed == nil {
		return Current{}, errors.New(`weather: answer lacks current.temperature_2m, weather_code or wind_speed_10m`)
	}
	t, err := time.Parse(openMeteoTime, c.Time)
	if err != nil {
		return Current{}, fmt.Errorf("weather: current.time %q: want %s", c.Time, openMeteoTime)
	}
	out := Current{Time: t, Temperature: *c.Temperature, WindSpeed: *c.WindSpeed, Code: *c.Code, Condition: condition(*c.Code)}
	for src, dst := range map[*float64]*float64{c.Humidity: &out.Humidity, c.Precipitation: &out.Precipitation, c.WindDirection: &out.WindDirection} {
		if src != nil {
			*dst = *src
		}
	}
	return out, nil
}

type hourlyDoc struct {
	Hourly *struct {
		Time        []string   `json:"time"`
		Temperature []*float64 `json:"temperature_2m"`
		PrecipProb  []*float64 `json:"precipitation_probability"`
		Code        []*int     `json:"weather_code"`
		WindSpeed   []*float64 `json:"wind_speed_10m"`
	} `json:"hourly"`
}

func decodeHourly(b []byte, hours int) ([]Hour, error) {
	var d hourlyDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("weather: answer is not the documented JSON: %w", err)
	}
	h := d.Hourly
	if h == nil || len(h.Time) == 0 || len(h.Temperature) != len(h.Time) || len(h.Code) != len(h.Time) {
		return nil, errors.New("weather: answer lacks hourly.time, temperature_2m and weather_code of equal length")
	}
	var out []Hour
	for i := range min(hours, len(h.Time)) {
		t, err := time.Parse(openMeteoTime, h.Time[i])
		if err != nil {
			return nil, fmt.Errorf("weather: hourly.time[%d] %q: want %s", i, h.Time[i], openMeteoTime)
		}
		if h.Temperature[i] == nil || h.Code[i] == nil {
			continue // the model has no value for that hour
		}
		hr := Hour{Time: t, Temperature: *h.Temperature[i], Code: *h.Code[i], Condition: condition(*h.Code[i])}
		if i < len(h.PrecipProb) && h.PrecipProb[i] != nil {
			hr.PrecipitationChance = *h.PrecipProb[i]
		}
		if i < len(h.WindSpeed) && h.WindSpeed[i] != nil {
			hr.WindSpeed = *h.WindSpeed[i]
		}
		out = append(out, hr)
	}
	return out, nil
}

// condition names a WMO weather code (the table in Open-Meteo's docs).
func condition(code int) string {
	switch {
	case code == 0:
		return "clear"
	case code <= 3:
		return "partly cloudy"
	case code == 45 || code == 48:
		return "fog"
	case code >= 51 && code <= 57:
		return "drizzle"
	case code >= 61 && code <= 67, code >= 80 && code <= 82:
		return "rain"
	case code >= 71 && code <= 77, code == 85 || code == 86:
		return "snow"
	case code >= 95:
		return "thunderstorm"
	}
	return "unknown"
}

func current(ctx context.Context, p Place) (Current, error) {
	body, fetched, stale, err := get(ctx, "current", p)
	if err != nil {
		return Current{}, err
	}
	c, err := decodeCurrent(body)
	if err != nil {
		return Current{}, sdk.Errorf(wire.CodeInternal, "%v", err) // checked before caching
	}
	cfg, _ := config(ctx)
	c.Source, c.FetchedAt, c.Stale = cfg.source(), fetched, stale
	return c, nil
}

func forecast(ctx context.Context, p Place) (Forecast, error) {
	hours := p.Hours
	if hours <= 0 {
		hours = 24
	}
	if hours > 168 {
		return Forecast{}, sdk.Errorf(wire.CodeInvalidArgument, "hours %d: at most 168", hours)
	}
	body, fetched, stale, err := get(ctx, "hourly", p)
	if err != nil {
		return Forecast{}, err
	}
	hs, err := decodeHourly(body, hours)
	if err != nil {
		return Forecast{}, sdk.Errorf(wire.CodeInternal, "%v", err)
	}
	cfg, _ := config(ctx)
	return Forecast{Hours: hs, Source: cfg.source(), FetchedAt: fetched, Stale: stale}, nil
}

// StatusIn is weather.status's input (none).
type StatusIn struct{}

func status(context.Context, StatusIn) (Status, error) { return cache.Stats(), nil }
