package host

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/sdk/wire"
)

// Rates bound what one plugin can make the host do. Zero fields take the
// defaults in DefaultRates. Bursts are twice the rate.
type Rates struct {
	HostCalls    float64       // host calls per second, every method counted
	LogBytes     float64       // bytes of log lines per second (the log method)
	Emits        float64       // events per second
	DenialWindow time.Duration // repeated denials within it become one audit record with a count
}

// DefaultRates are the rates of a host whose config sets none.
var DefaultRates = Rates{HostCalls: 500, LogBytes: 64 << 10, Emits: 50, DenialWindow: 10 * time.Second}

// OrDefault returns r with every zero field taken from DefaultRates.
func (r Rates) OrDefault() Rates {
	if r.HostCalls <= 0 {
		r.HostCalls = DefaultRates.HostCalls
	}
	if r.LogBytes <= 0 {
		r.LogBytes = DefaultRates.LogBytes
	}
	if r.Emits <= 0 {
		r.Emits = DefaultRates.Emits
	}
	if r.DenialWindow <= 0 {
		r.DenialWindow = DefaultRates.DenialWindow
	}
	return r
}

// Bucket is a token bucket that counts what it refused. It is safe for
// concurrent use.
type Bucket struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	tokens  float64
	last    time.Time
	refused int64
	now     func() time.Time
}

// NewBucket returns a full bucket refilled at rate tokens per second, up to
// twice that.
func NewBucket(rate float64) *Bucket {
	return &Bucket{rate: rate, burst: 2 * rate, tokens: 2 * rate, last: time.Now(), now: time.Now}
}

// Allow takes n tokens if there are that many, and otherwise counts a refusal.
func (b *Bucket) Allow(n float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if n > b.tokens {
		b.refused++
		return false
	}
	b.tokens -= n
	return true
}

// Refused returns how many Allow calls were refused since the last Refused.
func (b *Bucket) Refused() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.refused
	b.refused = 0
	return n
}

// DenialAuditor is implemented by a Gate that also audits the denials the
// host decides itself: a capability the plugin was not granted, and repeats
// of a denial the Gate made, which the host refuses without asking again
// within Rates.DenialWindow. The host reports each (plugin, method, target)
// at most twice per window — the first denial at once, then the number of
// repeats when the window closes — so a flooding plugin writes a bounded
// number of audit records. count is how many calls the record stands for.
type DenialAuditor interface {
	Denied(ctx context.Context, a policy.Action, reason string, count int)
}

// denials coalesces repeated denials of one plugin.
type denials struct {
	h      *Host
	window time.Duration

	mu sync.Mutex
	m  map[denialKey]*denialState
}

type denialKey struct{ method, target string }

type denialState struct {
	start    time.Time
	action   policy.Action
	reason   string
	byGate   bool // the Gate decided it, and audited the first
	repeats  int
	flushing bool
}

func newDenials(h *Host, window time.Duration) *denials {
	return &denials{h: h, window: window, m: map[denialKey]*denialState{}}
}

// deny records a denial the host decided (byGate false) or the Gate decided
// (byGate true) and returns the error the plugin sees.
func (d *denials) deny(ctx context.Context, a policy.Action, reason string, byGate bool) *wire.Error {
	key := denialKey{a.Name, a.Target}
	d.mu.Lock()
	st := d.m[key]
	if st == nil || time.Since(st.start) >= d.window {
		d.m[key] = &denialState{start: time.Now(), action: a, reason: reason, byGate: byGate}
		d.mu.Unlock()
		if !byGate {
			d.report(ctx, a, reason, 1)
		}
		return deniedError(a, reason)
	}
	st.repeats++
	if !st.flushing {
		st.flushing = true
		time.AfterFunc(time.Until(st.start.Add(d.window)), func() { d.flush(key, st) })
	}
	d.mu.Unlock()
	return deniedError(a, reason)
}

// suppressed says whether the Gate denied this very action within the
// window; if so the repeat is counted and denied without asking again.
func (d *denials) suppressed(ctx context.Context, a policy.Action) *wire.Error {
	d.mu.Lock()
	st := d.m[denialKey{a.Name, a.Target}]
	hit := st != nil && st.byGate && time.Since(st.start) < d.window
	d.mu.Unlock()
	if !hit {
		return nil
	}
	return d.deny(ctx, a, st.reason, true)
}

func (d *denials) flush(key denialKey, st *denialState) {
	d.mu.Lock()
	n := st.repeats
	if d.m[key] == st {
		delete(d.m, key)
	}
	d.mu.Unlock()
	if n > 0 {
		d.report(context.Background(), st.action, st.reason, n)
	}
}

// report hands a denial to the Gate's auditor, or — with none — to the log,
// which is not an audit trail but is still bounded per window.
func (d *denials) report(ctx context.Context, a policy.Action, reason string, count int) {
	if au, ok := d.h.cfg.Gate.(DenialAuditor); ok {
		au.Denied(context.WithoutCancel(ctx), a, reason, count)
		return
	}
	d.h.logger.Warn("plugin capability denied", "plugin", a.Principal.ID, "method", a.Name, "target", a.Target, "reason", reason, "count", count)
}

func deniedError(a policy.Action, reason string) *wire.Error {
	if a.Target != "" {
		return &wire.Error{Code: wire.CodeDenied, Message: fmt.Sprintf("%s %q: %s", a.Name, a.Target, reason)}
	}
	return &wire.Error{Code: wire.CodeDenied, Message: fmt.Sprintf("%s: %s", a.Name, reason)}
}

// OutputLimiter bounds what a plugin writes to its stdout and stderr, for
// the transports that log it: lines beyond the rate are dropped, and the
// drops are logged at most once per window with their count.
type OutputLimiter struct{ l *limiter }

// NewOutputLimiter returns a limiter of rate bytes per second that reports
// its drops to log.
func NewOutputLimiter(rate float64, log *slog.Logger) *OutputLimiter {
	return &OutputLimiter{newLimiter(rate, "output bytes/s", DefaultRates.DenialWindow, log)}
}

// Allow says whether a line of n bytes may be logged.
func (o *OutputLimiter) Allow(n int) bool { return o.l.allow(float64(n)) }

// limiter is one rate limit of one plugin, which logs what it refused at
// most once per window.
type limiter struct {
	b      *Bucket
	what   string
	window time.Duration
	log    *slog.Logger

	mu         sync.Mutex
	lastReport time.Time
}

func newLimiter(rate float64, what string, window time.Duration, log *slog.Logger) *limiter {
	return &limiter{b: NewBucket(rate), what: what, window: window, log: log}
}

// allow takes n; a refusal is logged with the count of refusals since the
// last report, at most once per window.
func (l *limiter) allow(n float64) bool {
	if l.b.Allow(n) {
		return true
	}
	l.mu.Lock()
	due := time.Since(l.lastReport) >= l.window
	if due {
		l.lastReport = time.Now()
	}
	l.mu.Unlock()
	if due {
		l.log.Warn("plugin exceeded a rate limit; dropping", "limit", l.what, "refused", l.b.Refused())
	}
	return false
}

// action is the policy.Action of a plugin's host call.
func action(agent, plugin, method, target string, effect wire.Effect, args json.RawMessage) policy.Action {
	return policy.Action{
		Agent: agent, Principal: policy.Principal{Kind: policy.PrincipalPlugin, ID: plugin},
		Kind: policy.ActionHost, Name: method, Target: target, Effect: effect, Args: args,
	}
}
