package host

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// grant is the policy state of one plugin.
type grant struct {
	spec   PluginSpec
	limits Limits
	mem    *memory.ScopedStore // nil without a Store
	http   *http.Client

	denials            *denials
	calls, logs, emits *limiter
}

func (h *Host) newGrant(spec PluginSpec) (*grant, error) {
	rates := h.cfg.Rates.OrDefault()
	log := h.logger.With("plugin", spec.Name)
	g := &grant{
		spec: spec, limits: spec.Limits.OrDefault(),
		denials: newDenials(h, rates.DenialWindow),
		calls:   newLimiter(rates.HostCalls, "host calls/s", rates.DenialWindow, log),
		logs:    newLimiter(rates.LogBytes, "log bytes/s", rates.DenialWindow, log),
		emits:   newLimiter(rates.Emits, "emits/s", rates.DenialWindow, log),
	}
	if h.cfg.Store != nil {
		s, err := memory.Scoped(h.cfg.Store, memory.Grants{
			Principal: spec.Name, Read: spec.Grants.MemoryRead, Write: spec.Grants.MemoryWrite,
			// A namespace outside the grants is refused by the scoped
			// view; the refusal is coalesced and audited like any other.
			OnDenied: func(ctx context.Context, d memory.Denial) {
				g.denials.deny(ctx, policy.Action{
					Agent: h.cfg.Agent, Principal: policy.Principal{Kind: policy.PrincipalPlugin, ID: spec.Name},
					Kind: policy.ActionHost, Name: "memory." + d.Op, Target: d.Namespace,
				}, d.Reason, false)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("plugin %q: memory grants: %w", spec.Name, err)
		}
		g.mem = s
	}
	c := *h.http
	c.Timeout = 0 // the call's context bounds it
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		if !allowedURL(spec.Grants.HTTP, req.URL) {
			return &redirectDenied{to: req.URL.Host}
		}
		return nil
	}
	rt, err := h.x402Client(g, cmp.Or[http.RoundTripper](c.Transport, http.DefaultTransport))
	if err != nil {
		return nil, fmt.Errorf("plugin %q: x402: %w", spec.Name, err)
	}
	c.Transport = rt
	g.http = &c
	return g, nil
}

type redirectDenied struct{ to string }

func (e *redirectDenied) Error() string { return "redirect to " + e.to + " which is not granted" }

// deny refuses a call the grants do not cover; repeats are coalesced.
func (h *Host) deny(ctx context.Context, g *grant, method, target, reason string) *wire.Error {
	return g.denials.deny(ctx, action(h.cfg.Agent, g.spec.Name, method, target, "", nil), reason, false)
}

// authorize asks the Gate about a granted call with a side effect. A nil
// Gate allows everything. done reports the outcome; call it exactly once.
func (h *Host) authorize(ctx context.Context, g *grant, method, target string, effect wire.Effect, args json.RawMessage) (done func(json.RawMessage, error), werr *wire.Error) {
	if h.cfg.Gate == nil {
		return func(json.RawMessage, error) {}, nil
	}
	a := action(h.cfg.Agent, g.spec.Name, method, target, effect, args)
	// A payment is decided afresh every time: its amount and the ledger
	// decide it, not an earlier refusal of another payment to the payee.
	if effect != wire.EffectPayment {
		if werr := g.denials.suppressed(ctx, a); werr != nil {
			return nil, werr
		}
	}
	done, err := h.cfg.Gate.Authorize(ctx, a)
	if err != nil {
		reason := err.Error()
		if we, ok := errors.AsType[*wire.Error](err); ok {
			reason = we.Message
		}
		return nil, g.denials.deny(ctx, a, reason, true)
	}
	return done, nil
}

// outcome is what done is told about a host call's result.
func outcome(out []byte, werr *wire.Error) (json.RawMessage, error) {
	if werr != nil {
		return nil, werr
	}
	return out, nil
}

// HostCall serves one host method for a plugin: the grants first, then the
// plugin's rates, then — for a call with a side effect — the Gate. It
// implements Dispatcher for every transport. payload may be a view of the
// plugin's memory: it is decoded before HostCall returns and not kept.
func (h *Host) HostCall(ctx context.Context, plugin, method string, payload []byte) ([]byte, *wire.Error) {
	h.mu.RLock()
	g := h.grants[plugin]
	h.mu.RUnlock()
	if g == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "plugin %q is not loaded", plugin)
	}
	if !g.calls.allow(1) {
		return nil, &wire.Error{Code: wire.CodeRateLimited, Retryable: true,
			Message: fmt.Sprintf("%s: plugin %q makes more than %.0f host calls/s", method, plugin, h.cfg.Rates.OrDefault().HostCalls)}
	}
	switch method {
	case wire.HostSign:
		return h.sign(ctx, g, payload)
	case wire.HostLog:
		if !g.logs.allow(float64(len(payload))) {
			return nil, &wire.Error{Code: wire.CodeRateLimited, Retryable: true, Message: "log: the plugin's log rate is exceeded; the line was dropped"}
		}
		return h.log(ctx, plugin, payload)
	case wire.HostMemoryGet, wire.HostMemoryPut, wire.HostMemoryQuery:
		return h.memory(ctx, g, method, payload)
	case wire.HostHTTPFetch:
		return h.fetch(ctx, g, payload)
	case wire.HostEmit:
		var a wire.EmitArgs
		if err := decode(method, payload, &a); err != nil {
			return nil, err
		}
		if !slices.Contains(g.spec.Grants.Emit, a.Topic) {
			return nil, h.deny(ctx, g, method, a.Topic, "topic not granted")
		}
		if h.cfg.Emit == nil {
			return nil, wire.Errorf(wire.CodeUnavailable, "emit: this agent has no event sink")
		}
		if !g.emits.allow(1) {
			return nil, &wire.Error{Code: wire.CodeRateLimited, Retryable: true,
				Message: fmt.Sprintf("emit %q: more than %.0f events/s; this one was dropped", a.Topic, h.cfg.Rates.OrDefault().Emits)}
		}
		done, werr := h.authorize(ctx, g, method, a.Topic, wire.EffectWrite, nil)
		if werr != nil {
			return nil, werr
		}
		if err := h.cfg.Emit(plugin, a.Topic, a.Payload); err != nil {
			werr := &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("emit %q: the event was dropped: %v", a.Topic, err), Retryable: true}
			done(outcome(nil, werr))
			return nil, werr
		}
		done(outcome(ok, nil))
		return ok, nil
	case wire.HostConfig, wire.HostSecret:
		var a wire.KeyArgs
		if err := decode(method, payload, &a); err != nil {
			return nil, err
		}
		granted, values := g.spec.Grants.Config, g.spec.Config
		if method == wire.HostSecret {
			granted, values = g.spec.Grants.Secrets, g.spec.Secrets
		}
		if !slices.Contains(granted, a.Key) {
			return nil, h.deny(ctx, g, method, a.Key, "not granted")
		}
		v, found := values[a.Key]
		if !found {
			return nil, wire.Errorf(wire.CodeNotFound, "%s %q is granted but has no value in the agent config", method, a.Key)
		}
		return encode(wire.Value{Value: v})
	case wire.HostClock:
		if !g.spec.Grants.Clock {
			return nil, h.deny(ctx, g, method, "", "clock not granted")
		}
		return encode(wire.Clock{UnixNano: h.cfg.Now().UnixNano()})
	case wire.HostPayQuote, wire.HostPayExecute:
		if !g.spec.Grants.Payment {
			return nil, h.deny(ctx, g, method, "", "payment not granted")
		}
		return h.pay(ctx, g, method, payload)
	default:
		return nil, wire.Errorf(wire.CodeNotFound, "no host method %q", method)
	}
}

var ok = []byte("{}")

func decode(method string, payload []byte, v any) *wire.Error {
	if err := json.Unmarshal(payload, v); err != nil {
		return wire.Errorf(wire.CodeInvalidArgument, "%s: arguments: %v", method, err)
	}
	return nil
}

func encode(v any) ([]byte, *wire.Error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "encode result: %v", err)
	}
	return b, nil
}

func (h *Host) log(ctx context.Context, plugin string, payload []byte) ([]byte, *wire.Error) {
	var a wire.LogArgs
	if err := decode(wire.HostLog, payload, &a); err != nil {
		return nil, err
	}
	level := slog.LevelInfo
	switch a.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, len(a.Attrs)+1)
	attrs = append(attrs, slog.String("plugin", plugin))
	for k, v := range a.Attrs {
		attrs = append(attrs, slog.Any(k, v))
	}
	h.logger.LogAttrs(ctx, level, a.Msg, attrs...)
	return ok, nil
}

func (h *Host) memory(ctx context.Context, g *grant, method string, payload []byte) ([]byte, *wire.Error) {
	if g.mem == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "%s: this agent has no memory store", method)
	}
	var res any
	var err error
	switch method {
	case wire.HostMemoryPut:
		var a wire.MemoryPutArgs
		if werr := decode(method, payload, &a); werr != nil {
			return nil, werr
		}
		recs := make([]memory.Record, len(a.Records))
		var namespaces []string
		for i, r := range a.Records {
			if memory.Kind(r.Kind) == memory.KindAudit {
				return nil, h.deny(ctx, g, method, r.Namespace, "plugins may not write audit records")
			}
			// Checked here, not only by the scoped store, so that a flood of
			// denied writes is coalesced like every other denial.
			if memory.CheckNamespace(r.Namespace) == nil && !memory.Granted(g.spec.Grants.MemoryWrite, r.Namespace) {
				return nil, h.deny(ctx, g, method, r.Namespace, "namespace not granted for writing")
			}
			if !slices.Contains(namespaces, r.Namespace) {
				namespaces = append(namespaces, r.Namespace)
			}
			recs[i] = toRecord(r)
			recs[i].Author = g.spec.Name
		}
		var dones []func(json.RawMessage, error)
		for _, ns := range namespaces {
			done, werr := h.authorize(ctx, g, method, ns, wire.EffectWrite, nil)
			if werr != nil {
				for _, d := range dones {
					d(nil, werr)
				}
				return nil, werr
			}
			dones = append(dones, done)
		}
		var stored []memory.Record
		if stored, err = g.mem.Put(ctx, recs...); err == nil {
			res = wire.MemoryRecords{Records: fromRecords(stored)}
		}
		for _, d := range dones {
			if err != nil {
				d(nil, err)
			} else {
				d(json.RawMessage(fmt.Sprintf(`{"records":%d}`, len(stored))), nil)
			}
		}
	case wire.HostMemoryGet:
		var a wire.MemoryGetArgs
		if werr := decode(method, payload, &a); werr != nil {
			return nil, werr
		}
		var r memory.Record
		if r, err = g.mem.Get(ctx, a.ID); err == nil {
			res = fromRecord(r)
		}
	case wire.HostMemoryQuery:
		var q wire.MemoryQuery
		if werr := decode(method, payload, &q); werr != nil {
			return nil, werr
		}
		if q.Namespace == "" {
			return nil, wire.Errorf(wire.CodeInvalidArgument, "%s: namespace is required", method)
		}
		if memory.CheckNamespace(q.Namespace) == nil && !memory.Granted(g.spec.Grants.MemoryRead, q.Namespace) {
			return nil, h.deny(ctx, g, method, q.Namespace, "namespace not granted for reading")
		}
		if q.Limit <= 0 || q.Limit > h.cfg.MaxQueryRecords {
			q.Limit = h.cfg.MaxQueryRecords
		}
		out := wire.MemoryRecords{Records: []wire.MemoryRecord{}}
		for r, qerr := range g.mem.Query(ctx, toQuery(q)) {
			if qerr != nil {
				err = qerr
				break
			}
			out.Records = append(out.Records, fromRecord(r))
		}
		res = out
	}
	if err != nil {
		return nil, MemoryError(method, err)
	}
	return encode(res)
}

// MemoryError is a memory failure in the one error shape of tools and
// plugins, so a built-in tool and a plugin report the same failure alike.
func MemoryError(op string, err error) *wire.Error {
	e := &wire.Error{Message: fmt.Sprintf("%s: %v", op, err)}
	switch {
	case errors.Is(err, memory.ErrDenied):
		e.Code = wire.CodeDenied
	case errors.Is(err, memory.ErrNotFound):
		e.Code = wire.CodeNotFound
	case errors.Is(err, memory.ErrInvalid):
		e.Code = wire.CodeInvalidArgument
	case errors.Is(err, memory.ErrTooLarge):
		e.Code = wire.CodeTooLarge
	default:
		e.Code, e.Retryable = wire.CodeUnavailable, true
	}
	return e
}

// allowedURL reports whether u's host[:port] is granted. A grant without a
// port covers the scheme's default port only.
func allowedURL(grants []string, u *url.URL) bool {
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	for _, g := range grants {
		gh, gp, err := net.SplitHostPort(g)
		if err != nil {
			gh, gp = strings.Trim(g, "[]"), defaultPort(u.Scheme)
		}
		if strings.EqualFold(gh, host) && gp == port {
			return true
		}
	}
	return false
}

func (h *Host) fetch(ctx context.Context, g *grant, payload []byte) ([]byte, *wire.Error) {
	const method = wire.HostHTTPFetch
	var a wire.HTTPRequest
	if err := decode(method, payload, &a); err != nil {
		return nil, err
	}
	u, err := url.Parse(a.URL)
	if err != nil || u.Host == "" {
		return nil, wire.Errorf(wire.CodeInvalidArgument, "%s: url %q: want an absolute http(s) URL", method, a.URL)
	}
	if !allowedURL(g.spec.Grants.HTTP, u) {
		return nil, h.deny(ctx, g, method, u.Host, "host not granted")
	}
	if a.Method == "" {
		a.Method = http.MethodGet
	}
	effect := wire.EffectWrite
	if a.Method == http.MethodGet || a.Method == http.MethodHead {
		effect = wire.EffectNone
	}
	done, werr := h.authorize(ctx, g, method, u.Host, effect, nil)
	if werr != nil {
		return nil, werr
	}
	out, werr := h.doFetch(ctx, g, u, a)
	done(outcome(out, werr))
	return out, werr
}

// fetchTimeout is how long a fetch may take: the call's limit or the
// plugin's own shorter one, and always less than what is left of the
// plugin's call, so that the plugin sees the timeout and can handle it
// instead of being stopped at its deadline together with the fetch.
func fetchTimeout(ctx context.Context, limit, asked time.Duration) time.Duration {
	timeout := limit
	if asked > 0 && asked < timeout {
		timeout = asked
	}
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		margin := min(max(left/10, 200*time.Millisecond), left/2)
		timeout = min(timeout, left-margin)
	}
	return max(timeout, 0)
}

func (h *Host) doFetch(ctx context.Context, g *grant, u *url.URL, a wire.HTTPRequest) ([]byte, *wire.Error) {
	const method = wire.HostHTTPFetch
	timeout := fetchTimeout(ctx, g.limits.CallTimeout, a.Timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if len(a.Body) > 0 {
		body = bytes.NewReader(a.Body)
	}
	req, err := http.NewRequestWithContext(ctx, a.Method, u.String(), body)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInvalidArgument, "%s: %v", method, err)
	}
	for k, vs := range a.Header {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	resp, err := g.http.Do(req)
	if err != nil {
		if rd, isRD := errors.AsType[*redirectDenied](err); isRD {
			return nil, h.deny(ctx, g, method, rd.to, "redirect to a host that is not granted")
		}
		if werr, paid := fetchPayError(err); paid {
			return nil, werr
		}
		if ctx.Err() != nil {
			return nil, &wire.Error{Code: wire.CodeTimeout, Message: fmt.Sprintf("%s %s: no answer within %v", method, u.Host, timeout), Retryable: true}
		}
		return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s: %v", method, err), Retryable: true}
	}
	defer resp.Body.Close()
	max := g.limits.MaxMessageBytes
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(max)+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, &wire.Error{Code: wire.CodeTimeout, Message: fmt.Sprintf("%s %s: body not read within %v", method, u.Host, timeout), Retryable: true}
		}
		return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("%s: read body: %v", method, err), Retryable: true}
	}
	if len(b) > max {
		return nil, wire.Errorf(wire.CodeTooLarge, "%s %s: response body exceeds the limit of %d bytes", method, u.Host, max)
	}
	return encode(wire.HTTPResponse{Status: resp.StatusCode, Header: resp.Header, Body: b})
}

func toRecord(r wire.MemoryRecord) memory.Record {
	return memory.Record{
		Namespace: r.Namespace, Kind: memory.Kind(r.Kind), Time: r.Time, Text: r.Text,
		Data: r.Data, Tags: r.Tags, Key: r.Key, ExpiresAt: r.ExpiresAt,
	}
}

func fromRecord(r memory.Record) wire.MemoryRecord {
	return wire.MemoryRecord{
		ID: r.ID, Seq: r.Seq, Namespace: r.Namespace, Kind: string(r.Kind), Author: r.Author,
		Time: r.Time, Recorded: r.Recorded, Text: r.Text, Data: r.Data, Tags: r.Tags,
		Key: r.Key, ExpiresAt: r.ExpiresAt,
	}
}

func fromRecords(rs []memory.Record) []wire.MemoryRecord {
	out := make([]wire.MemoryRecord, len(rs))
	for i, r := range rs {
		out[i] = fromRecord(r)
	}
	return out
}

func toQuery(q wire.MemoryQuery) memory.Query {
	kinds := make([]memory.Kind, len(q.Kinds))
	for i, k := range q.Kinds {
		kinds[i] = memory.Kind(k)
	}
	return memory.Query{
		Namespace: q.Namespace, Kinds: kinds, Author: q.Author, Tags: q.Tags, Key: q.Key,
		Since: q.Since, Until: q.Until, AfterSeq: q.AfterSeq, Limit: q.Limit, Ascending: q.Ascending,
	}
}

// defaultPort is the port a URL of scheme reaches when it names none.
func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}
