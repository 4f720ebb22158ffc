package x402

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/depai/depai/agent/wallet/internal/journal"
)

// ReplayGuard remembers every payment authorization a seller accepted, in a
// file, so that a replayed PAYMENT-SIGNATURE is refused before it reaches
// the facilitator — also after a restart. An entry is kept until its
// authorization expired (after that the token refuses it anyway).
type ReplayGuard struct {
	j   *journal.File
	now func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // key → until
}

type replayRecord struct {
	Key   string `json:"key"`
	Until int64  `json:"until"` // unix seconds
}

// OpenReplayGuard opens (or creates) the guard's file; now nil means
// time.Now.
func OpenReplayGuard(path string, now func() time.Time) (*ReplayGuard, error) {
	if now == nil {
		now = time.Now
	}
	g := &ReplayGuard{now: now, seen: map[string]time.Time{}}
	lines := 0
	j, err := journal.Open(path, func(_ int, p []byte) error {
		lines++
		var r replayRecord
		if err := json.Unmarshal(p, &r); err != nil || r.Key == "" {
			return fmt.Errorf("replay guard record %q: want {key, until}", p)
		}
		g.seen[r.Key] = time.Unix(r.Until, 0)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("x402: %w", err)
	}
	g.j = j
	t := now()
	for k, until := range g.seen {
		if t.After(until) {
			delete(g.seen, k)
		}
	}
	if lines > 1024 && lines > 4*len(g.seen) {
		var ps [][]byte
		for k, u := range g.seen {
			b, _ := json.Marshal(replayRecord{Key: k, Until: u.Unix()})
			ps = append(ps, b)
		}
		if err := j.Rewrite(ps); err != nil {
			j.Close()
			return nil, fmt.Errorf("x402: %w", err)
		}
	}
	return g, nil
}

// ErrReplay is returned by Claim for an authorization already seen.
var ErrReplay = errors.New("x402: payment authorization already used")

// Claim records key (valid until `until`) durably; ErrReplay if it was
// claimed before.
func (g *ReplayGuard) Claim(key string, until time.Time) error {
	b, _ := json.Marshal(replayRecord{Key: key, Until: until.Add(time.Minute).Unix()})
	g.mu.Lock()
	if _, dup := g.seen[key]; dup {
		g.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrReplay, key)
	}
	seq, err := g.j.Append(b)
	if err == nil {
		g.seen[key] = until.Add(time.Minute)
	}
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("x402: replay guard: %w", err)
	}
	if err := g.j.Sync(seq); err != nil {
		return fmt.Errorf("x402: replay guard: %w", err)
	}
	return nil
}

// Close closes the file.
func (g *ReplayGuard) Close() error { return g.j.Close() }
