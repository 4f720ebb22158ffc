package agent

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// FuzzNumericFields: whatever a plugin's reading holds, the plot gets at
// most readingsMaxFields finite numbers and never a panic.
func FuzzNumericFields(f *testing.F) {
	for _, s := range []string{`{"speed_mps":1.2,"fix":"rtk_fixed","battery":{"pct":80}}`, `3.5`, `"text"`, `[1,2]`, `{"a":{"b":{"c":1}}}`, `{"x":1e400}`, `null`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := numericFields(json.RawMessage(data))
		if len(got) > readingsMaxFields {
			t.Fatalf("%d fields from %q", len(got), data)
		}
		for k, v := range got {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("field %q = %v from %q", k, v, data)
			}
		}
	})
}

// FuzzReadingsTime: a FROM or TO is a time, a duration ago, or a clear
// error; never a time after now from a duration.
func FuzzReadingsTime(f *testing.F) {
	for _, s := range []string{"2h", "90m", "0s", "-1h", "2026-12-01T20:00:00Z", "yesterday", "", "1e9h"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		at, err := readingsTime(s, now)
		if err != nil {
			if _, ok := err.(*commandError); !ok {
				t.Fatalf("%q: %T %v, want a commandError", s, err, err)
			}
			return
		}
		if _, perr := time.ParseDuration(s); perr == nil && at.After(now) {
			t.Fatalf("%q is %v, after now", s, at)
		}
	})
}
