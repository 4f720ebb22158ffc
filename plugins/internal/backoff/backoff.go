// Package backoff paces reconnects of the sensor plugins' long-lived links
// (gpsd, NTRIP casters, MQTT brokers): exponential from Min to Max with
// jitter, so a fleet that lost its receiver or caster at once does not
// reconnect in lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the delay before the next attempt. The zero value waits 100 ms
// doubling to 10 s. Not safe for concurrent use; each link owns one.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the delay before the next attempt and doubles it: a random
// duration in [d/2, d].
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = max(10*time.Second, lo)
	}
	if b.cur < lo {
		b.cur = lo
	}
	d := b.cur
	b.cur = min(2*b.cur, hi)
	return d/2 + rand.N(d/2+1)
}

// Reset starts the delays again from Min; call it once a link worked.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
