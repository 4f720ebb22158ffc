package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
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

// Records written after their answer are bounded: the turn over the bound
// waits for a place, and WaitStored waits for them all.
func TestPendingStoresBounded(t *testing.T) {
	var p pending
	added := make(chan struct{}, maxPendingStores+4)
	for range maxPendingStores + 4 {
		go func() { p.add(); added <- struct{}{} }()
	}
	for range maxPendingStores {
		<-added
	}
	select {
	case <-added:
		t.Fatalf("%d records pending; want at most %d", maxPendingStores+1, maxPendingStores)
	case <-time.After(50 * time.Millisecond):
	}
	for range 4 {
		p.done()
		<-added
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := p.wait(ctx); err == nil {
		t.Fatal("wait returned with records pending")
	}
	for range maxPendingStores {
		p.done()
	}
	if err := p.wait(t.Context()); err != nil {
		t.Fatalf("wait with none pending: %v", err)
	}
}
