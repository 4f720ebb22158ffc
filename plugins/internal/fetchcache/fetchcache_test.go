package fetchcache

import (
	"errors"
	"testing"
	"time"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

func TestGet(t *testing.T) {
	var c Cache
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := Policy{TTL: time.Minute, Gap: 10 * time.Second}
	calls := 0
	answer := sdk.Response{Status: 200, Body: []byte("good")}
	fetch := func() (sdk.Response, error) { calls++; return answer, nil }
	ok := func(b []byte) error {
		if string(b) != "good" {
			return &CheckError{Kind: "not_good", Err: errors.New("not good")}
		}
		return nil
	}
	get := func(at time.Time) (Answer, error) { return c.Get("k", "up", p, at, fetch, ok) }

	if a, err := get(t0); err != nil || string(a.Body) != "good" || a.Stale || calls != 1 {
		t.Fatalf("first: %+v, %v, %d calls", a, err, calls)
	}
	if a, _ := get(t0.Add(30 * time.Second)); a.Stale || calls != 1 {
		t.Fatalf("within TTL: %+v, %d calls", a, calls)
	}
	answer = sdk.Response{Status: 200, Body: []byte("bad")}
	if a, err := get(t0.Add(2 * time.Minute)); err != nil || !a.Stale || string(a.Body) != "good" || calls != 2 {
		t.Fatalf("refused body: %+v, %v; want the old answer, stale", a, err)
	}
	answer = sdk.Response{Status: 429, Header: map[string][]string{"retry-after": {"300"}}}
	get(t0.Add(3 * time.Minute))
	answer = sdk.Response{Status: 200, Body: []byte("good")}
	if a, _ := get(t0.Add(5 * time.Minute)); !a.Stale || calls != 3 {
		t.Fatalf("inside Retry-After: %+v, %d calls; want no call", a, calls)
	}
	if a, _ := get(t0.Add(9 * time.Minute)); a.Stale || calls != 4 {
		t.Fatalf("after Retry-After: %+v, %d calls", a, calls)
	}
	if _, err := c.Get("other", "up", p, t0.Add(9*time.Minute+time.Second), fetch, ok); err == nil {
		t.Fatal("a call within min_interval with nothing cached succeeded")
	} else if we, isWire := errors.AsType[*wire.Error](err); !isWire || we.Code != wire.CodeUnavailable || !we.Retryable {
		t.Fatalf("within min_interval: %v", err)
	}
	st := c.Stats()
	if st.Calls != 4 || st.CacheHits != 1 || st.Limited != 2 || st.BadByKind["not_good"] != 1 || st.BadByKind["http_429"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}
