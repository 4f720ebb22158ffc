// Package fetchcache is what the HTTP feed plugins (weather, feed) share:
// answers cached per key for a TTL, at most one upstream call per interval
// per upstream, a 429's Retry-After honoured, and every bad answer — 429,
// 5xx, other statuses, oversize, a body the plugin's check refuses —
// counted by kind. While the upstream fails, a cached answer is served
// marked stale; with nothing cached the call fails. Nothing is invented.
package fetchcache

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

// MaxBody bounds an answer.
const MaxBody = 1 << 20

// Stats is what a feed's status tool shows.
type Stats struct {
	Calls     int            `json:"calls" jsonschema:"requests sent upstream"`
	CacheHits int            `json:"cache_hits"`
	Limited   int            `json:"rate_limited" jsonschema:"requests not sent because of min_interval or a 429's Retry-After"`
	Bad       int            `json:"bad"`
	BadByKind map[string]int `json:"bad_by_kind,omitempty" jsonschema:"http_429, http_5xx, http_other, too_large, unavailable, and the check's kinds (not_json, missing_field …)"`
	LastError string         `json:"last_error,omitempty"`
}

// Policy is how often one upstream may be asked.
type Policy struct {
	TTL time.Duration // how long an answer is fresh
	Gap time.Duration // the least time between two upstream calls
}

// Answer is a body and when it was fetched.
type Answer struct {
	Body    []byte
	Fetched time.Time
	Stale   bool // the upstream failed or was rate limited; this is the last good answer
}

// CheckError is a body the plugin's check refused, of a kind it names.
type CheckError struct {
	Kind string
	Err  error
}

func (e *CheckError) Error() string { return e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

// Cache holds answers and limits. Its lock guards everything and is not
// held during fetches. The zero value is ready.
type Cache struct {
	mu      sync.Mutex
	answers map[string]Answer
	limits  map[string]*limit
	st      Stats
}

type limit struct{ lastCall, holdUntil time.Time }

// Get returns the answer for key from upstream (the limit's scope, e.g.
// the base URL) under p at now: from cache when fresh, else fetch()'s
// response if check accepts its body.
func (c *Cache) Get(key, upstream string, p Policy, now time.Time, fetch func() (sdk.Response, error), check func([]byte) error) (Answer, error) {
	c.mu.Lock()
	if c.answers == nil {
		c.answers, c.limits = map[string]Answer{}, map[string]*limit{}
	}
	have, ok := c.answers[key]
	if ok && now.Sub(have.Fetched) < p.TTL {
		c.st.CacheHits++
		c.mu.Unlock()
		return have, nil
	}
	lim := c.limits[upstream]
	if lim == nil {
		lim = &limit{}
		c.limits[upstream] = lim
	}
	if now.Before(lim.holdUntil) || (!lim.lastCall.IsZero() && now.Sub(lim.lastCall) < p.Gap) {
		c.st.Limited++
		c.mu.Unlock()
		if ok {
			have.Stale = true
			return have, nil
		}
		return Answer{}, &wire.Error{Code: wire.CodeUnavailable, Message: "rate limited (min_interval or the API's Retry-After); try again shortly", Retryable: true}
	}
	lim.lastCall = now
	c.st.Calls++
	c.mu.Unlock()

	resp, err := fetch()
	kind, err := classify(resp, err, check)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.st.Bad++
		if c.st.BadByKind == nil {
			c.st.BadByKind = map[string]int{}
		}
		c.st.BadByKind[kind]++
		c.st.LastError = err.Error()
		if kind == "http_429" {
			lim.holdUntil = now.Add(retryAfter(resp.Header))
		}
		if ok {
			have.Stale = true
			return have, nil
		}
		return Answer{}, &wire.Error{Code: wire.CodeUnavailable, Message: err.Error(), Retryable: true}
	}
	a := Answer{Body: resp.Body, Fetched: now}
	c.answers[key] = a
	return a, nil
}

func classify(resp sdk.Response, err error, check func([]byte) error) (string, error) {
	if err != nil {
		if we, ok := errors.AsType[*wire.Error](err); ok && we.Code == wire.CodeTooLarge {
			return "too_large", fmt.Errorf("answer too large: %v", err)
		}
		return "unavailable", err
	}
	switch {
	case len(resp.Body) > MaxBody:
		return "too_large", fmt.Errorf("answer of %d bytes; at most %d expected", len(resp.Body), MaxBody)
	case resp.Status == 429:
		return "http_429", errors.New("upstream rate limit (HTTP 429)")
	case resp.Status >= 500:
		return "http_5xx", fmt.Errorf("upstream HTTP %d", resp.Status)
	case resp.Status != 200:
		return "http_other", fmt.Errorf("upstream HTTP %d", resp.Status)
	}
	if err := check(resp.Body); err != nil {
		kind := "invalid"
		if ce, ok := errors.AsType[*CheckError](err); ok {
			kind = ce.Kind
		}
		return kind, err
	}
	return "", nil
}

func retryAfter(h map[string][]string) time.Duration {
	for k, vs := range h {
		if strings.EqualFold(k, "Retry-After") && len(vs) > 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(vs[0])); err == nil && n >= 0 {
				return min(time.Duration(n)*time.Second, time.Hour)
			}
		}
	}
	return 30 * time.Second
}

// Stats is a copy of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	if st.BadByKind != nil {
		st.BadByKind = make(map[string]int, len(c.st.BadByKind))
		for k, v := range c.st.BadByKind {
			st.BadByKind[k] = v
		}
	}
	return st
}
