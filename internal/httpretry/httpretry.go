// Package httpretry is what depai's HTTP clients of model endpoints (the chat
// adapter in agent/llm and the embeddings client in memory/embed) share
// about retrying: which statuses are worth another attempt, how long the
// endpoint asks to wait, and a jittered exponential backoff. It lives at the
// module root so that memory/ may use it without importing agent/.
package httpretry

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxAfter caps a parsed Retry-After, so that a garbage value cannot
// overflow a time.Duration.
const maxAfter = 1 << 30 * time.Second

// After reads a Retry-After header value: delay-seconds ("120") or an
// HTTP-date, relative to now. ok is false when the value is absent or
// malformed; a date in the past is a wait of 0.
func After(v string, now time.Time) (wait time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int64(maxAfter/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxAfter), true
}

// Retryable reports whether a response with this status may succeed when
// sent again: 408, 429 and 5xx.
func Retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// Backoff is the wait before retry n (1-based): base·2^(n-1), capped at
// limit, of which a random half is taken away so that many clients do not
// retry in step.
func Backoff(base, limit time.Duration, n int) time.Duration {
	d := base << min(max(n-1, 0), 20)
	if d <= 0 || d > limit {
		d = limit
	}
	return d/2 + rand.N(d/2+1)
}
