package agent

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzCleanArgs: whatever a model sends as tool arguments, cleanArgs either
// returns one JSON object or an invalid_argument error — never a panic, never
// something else handed to a tool.
func FuzzCleanArgs(f *testing.F) {
	for _, seed := range []string{"", "{}", `{"a":1}`, "```json\n{\"a\":1}\n```", "```\n{}\n```", `{"a`, "[1,2]", "null", " \t", "```json", `"{}"`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := cleanArgs(s)
		if err != nil {
			if err.Code != "invalid_argument" || raw != nil {
				t.Fatalf("error %+v with %q", err, raw)
			}
			return
		}
		var obj map[string]any
		if json.Unmarshal(raw, &obj) != nil || !strings.HasPrefix(strings.TrimSpace(string(raw)), "{") {
			t.Fatalf("cleanArgs(%q) = %q, not a JSON object", s, raw)
		}
	})
}
