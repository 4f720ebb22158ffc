package httpretry_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/depai/depai/internal/httpretry"
)

func TestAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"3", 3 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999", 0, false},
		{"9999999999999", 1 << 30 * time.Second, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	} {
		got, ok := httpretry.After(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("After(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetryable(t *testing.T) {
	for status, want := range map[int]bool{200: false, 400: false, 401: false, 404: false, 408: true, 429: true, 500: true, 502: true, 503: true} {
		if got := httpretry.Retryable(status); got != want {
			t.Errorf("Retryable(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n <= 40; n++ {
		full := min(100*time.Millisecond<<min(n-1, 20), time.Second)
		for range 20 {
			if d := httpretry.Backoff(100*time.Millisecond, time.Second, n); d < full/2 || d > full {
				t.Fatalf("Backoff(100ms, 1s, %d) = %v; want within [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

func FuzzAfter(f *testing.F) {
	for _, s := range []string{"", "5", "-3", "Wed, 21 Oct 2015 07:28:00 GMT", "1e9", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := httpretry.After(v, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("After(%q) = %v, %v", v, d, ok)
		}
	})
}
