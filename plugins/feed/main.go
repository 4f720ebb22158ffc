// Command feed is the depai plugin for a generic HTTP JSON feed — DePIN
// network metrics (DePINscan, W3bstream project metrics …), or any API
// answering JSON: it fetches one endpoint, maps fields of the answer to
// readings with units, and caches and rate-limits like the weather plugin
// (plugins/internal/fetchcache). Readings carry their source and time.
//
// It needs nothing but the host's http.fetch and the clock, so it runs as
// a WASM plugin. Which host it may reach is the agent's grant (http), not
// this plugin's choice: it requests no host of its own.
//
// Config (granted keys): url (the endpoint, with its query), fields (a JSON
// array of {name, path, unit, optional}; paths are dot-separated keys and
// array indexes, e.g. "data.0.total_devices"), time_path (optional: where
// the answer says when its data is from, RFC 3339 or Unix seconds),
// api_key_header (optional: the header the secret feed_api_key is sent in,
// e.g. x-api-key), cache_ttl (default 1m), min_interval (default 10s).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/depai/depai/plugins/internal/fetchcache"
	"github.com/depai/depai/plugins/internal/jsonmap"
	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

var configKeys = []string{"url", "fields", "time_path", "api_key_header", "cache_ttl", "min_interval"}

const secretKey = "feed_api_key"

func init() {
	sdk.Plugin("feed", "0.1.0")
	sdk.Requests(wire.Capabilities{Config: configKeys, Secrets: []string{secretKey}, Clock: true})
	sdk.Sensor("feed.readings", "The feed's mapped values with units, source and time.", time.Minute, readings)
	sdk.Tool("feed.get", "The feed's current values, with units, source and time.", get)
	sdk.Tool("feed.status", "Upstream calls, cache hits and refused answers by kind.", status)
}

func main() { sdk.Main() }

// Reading is one mapped value.
type Reading struct {
	Name   string    `json:"name"`
	Value  float64   `json:"value"`
	Unit   string    `json:"unit,omitempty"`
	Time   time.Time `json:"time" jsonschema:"when the data is from: the answer's time_path, else when it was fetched"`
	Source string    `json:"source" jsonschema:"the host answering"`
}

// Readings is feed.get's answer and the feed.readings sensor's reading.
type Readings struct {
	Readings  []Reading `json:"readings"`
	FetchedAt time.Time `json:"fetched_at"`
	Stale     bool      `json:"stale" jsonschema:"served from cache because the upstream failed or was rate limited"`
}

// cache holds answers and counters; the SDK registers handlers in init()
// with no per-instance hook, so the process (or WASM instance) holds it.
var cache fetchcache.Cache

type settings struct {
	url      *url.URL
	fields   []jsonmap.Field
	timePath string
	header   string
	key      string
	policy   fetchcache.Policy
}

func config(ctx context.Context) (settings, error) {
	vals, err := sdk.ConfigValues(ctx, configKeys...)
	if err != nil {
		return settings{}, err
	}
	bad := func(key, msg string) error {
		return sdk.Errorf(wire.CodeInvalidArgument, "feed config %s %q: %s", key, vals[key], msg)
	}
	s := settings{timePath: vals["time_path"], header: vals["api_key_header"], policy: fetchcache.Policy{TTL: time.Minute, Gap: 10 * time.Second}}
	u, err := url.Parse(vals["url"])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return s, bad("url", "want an http(s) URL")
	}
	s.url = u
	dec := json.NewDecoder(strings.NewReader(vals["fields"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s.fields); err != nil || len(s.fields) == 0 {
		return s, bad("fields", `want a JSON array of {"name","path","unit"}`)
	}
	if err := jsonmap.ValidFields(s.fields); err != nil {
		return s, bad("fields", err.Error())
	}
	for key, dst := range map[string]*time.Duration{"cache_ttl": &s.policy.TTL, "min_interval": &s.policy.Gap} {
		if v, ok := vals[key]; ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return s, bad(key, "want a Go duration such as 1m")
			}
			*dst = d
		}
	}
	if s.header != "" {
		if s.key, err = sdk.Secret(ctx, secretKey); err != nil {
			return s, sdk.Errorf(wire.CodeInvalidArgument, "feed config api_key_header %q is set, but the secret %s is not: %v", s.header, secretKey, err)
		}
	}
	return s, nil
}

func get(ctx context.Context, _ GetIn) (Readings, error) {
	cfg, err := config(ctx)
	if err != nil {
		return Readings{}, err
	}
	now, err := sdk.Now(ctx)
	if err != nil {
		return Readings{}, err
	}
	fetch := func() (sdk.Response, error) {
		req := sdk.Request{URL: cfg.url.String(), Header: map[string][]string{"Accept": {"application/json"}}, Timeout: 10 * time.Second}
		if cfg.header != "" {
			req.Header[cfg.header] = []string{cfg.key}
		}
		return sdk.HTTPFetch(ctx, req)
	}
	check := func(b []byte) error {
		_, err := decode(b, cfg, now)
		return err
	}
	a, err := cache.Get(cfg.url.String(), cfg.url.String(), cfg.policy, now, fetch, check)
	if err != nil {
		return Readings{}, err
	}
	rs, err := decode(a.Body, cfg, a.Fetched)
	if err != nil {
		return Readings{}, sdk.Errorf(wire.CodeInternal, "feed: %v", err) // checked before caching
	}
	return Readings{Readings: rs, FetchedAt: a.Fetched, Stale: a.Stale}, nil
}

// decode maps an answer; its time is time_path's value, else fetched.
func decode(b []byte, cfg settings, fetched time.Time) ([]Reading, error) {
	vs, err := jsonmap.Decode(b, cfg.fields)
	if err != nil {
		return nil, &fetchcache.CheckError{Kind: string(jsonmap.KindOf(err)), Err: fmt.Errorf("feed: %w", err)}
	}
	at := fetched
	if cfg.timePath != "" {
		if at, err = answerTime(b, cfg.timePath); err != nil {
			return nil, &fetchcache.CheckError{Kind: "bad_time", Err: err}
		}
	}
	out := make([]Reading, len(vs))
	for i, v := range vs {
		out[i] = Reading{Name: v.Name, Value: v.Value, Unit: v.Unit, Time: at, Source: cfg.url.Host}
	}
	return out, nil
}

func answerTime(b []byte, path string) (time.Time, error) {
	var doc any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return time.Time{}, err
	}
	v, ok := jsonmap.Lookup(doc, path)
	if !ok {
		return time.Time{}, fmt.Errorf("feed: time_path %s: missing", path)
	}
	switch x := v.(type) {
	case string:
		t, err := time.Parse(time.RFC3339, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("feed: time_path %s %q: want RFC 3339", path, x)
		}
		return t.UTC(), nil
	case json.Number:
		sec, err := strconv.ParseFloat(string(x), 64)
		if err != nil || sec < 0 || sec > 1e11 {
			return time.Time{}, fmt.Errorf("feed: time_path %s %s: want Unix seconds", path, x)
		}
		whole, frac := math.Modf(sec)
		return time.Unix(int64(whole), int64(frac*1e9)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("feed: time_path %s: %T; want a time", path, v)
}

// GetIn is feed.get's input (none).
type GetIn struct{}

func readings(ctx context.Context) (Readings, error) { return get(ctx, GetIn{}) }

// StatusIn is feed.status's input (none).
type StatusIn struct{}

func status(context.Context, StatusIn) (fetchcache.Stats, error) { return cache.Stats(), nil }
