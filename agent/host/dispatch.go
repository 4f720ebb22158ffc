package host

import (
	"bytes"
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

	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// grant is the policy state of one plugin.
type grant struct {
	spec   PluginSpec
	limits Limits
	mem    *memory.ScopedStore // nil without a Store
	http   *http.Client
}

func (h *Host) newGrant(spec PluginSpec) (*grant, error) {
	g := &grant{spec: spec, limits: spec.Limits.OrDefault()}
	if h.cfg.Store != nil {
		s, err := memory.Scoped(h.cfg.Store, memory.Grants{
			Principal: spec.Name, Read: spec.Grants.MemoryRead, Write: spec.Grants.MemoryWrite,
			AuditNamespace: h.cfg.AuditNamespace,
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
	g.http = &c
	return g, nil
}

type redirectDenied struct{ to string }

func (e *redirectDenied) Error() string { return "redirect to " + e.to + " which is not granted" }

// HostCall serves one host method for a plugin, checking its grants. It
// implements Dispatcher for every transport. payload may be a view of the
// plugin's memory: it is decoded before HostCall returns and not kept.
func (h *Host) HostCall(ctx context.Context, plugin, method string, payload []byte) ([]byte, *wire.Error) {
	h.mu.RLock()
	g := h.grants[plugin]
	h.mu.RUnlock()
	if g == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "plugin %q is not loaded", plugin)
	}
	switch method {
	case wire.HostLog:
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
			return nil, h.deny(ctx, plugin, method, a.Topic, "topic not granted")
		}
		if h.cfg.Emit == nil {
			return nil, wire.Errorf(wire.CodeUnavailable, "emit: this agent has no event sink")
		}
		if err := h.cfg.Emit(plugin, a.Topic, a.Payload); err != nil {
			return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("emit %q: the event was dropped: %v", a.Topic, err), Retryable: true}
		}
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
			return nil, h.deny(ctx, plugin, method, a.Key, "not granted")
		}
		v, found := values[a.Key]
		if !found {
			return nil, wire.Errorf(wire.CodeNotFound, "%s %q is granted but has no value in the agent config", method, a.Key)
		}
		return encode(wire.Value{Value: v})
	case wire.HostClock:
		if !g.spec.Grants.Clock {
			return nil, h.deny(ctx, plugin, method, "", "clock not granted")
		}
		return encode(wire.Clock{UnixNano: h.cfg.Now().UnixNano()})
	case wire.HostPayQuote, wire.HostPayExecute:
		if !g.spec.Grants.Payment {
			return nil, h.deny(ctx, plugin, method, "", "payment not granted")
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "%s: payments are not configured on this agent", method)
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

// deny logs a denial as an audit line, records it in memory when there is
// a store, and returns the denied error the plugin sees.
func (h *Host) deny(ctx context.Context, plugin, method, target, reason string) *wire.Error {
	h.logger.Warn("plugin capability denied", "audit", true, "plugin", plugin, "method", method, "target", target, "reason", reason)
	if h.cfg.Store != nil {
		data, _ := json.Marshal(map[string]string{"decision": "deny", "plugin": plugin, "method": method, "target": target, "reason": reason})
		rec := memory.Record{
			Namespace: h.cfg.AuditNamespace, Kind: memory.KindAudit, Author: plugin,
			Text: fmt.Sprintf("denied %s %s to plugin %s: %s", method, target, plugin, reason),
			Data: data, Tags: []string{"denied", method},
		}
		if _, err := h.cfg.Store.Put(context.WithoutCancel(ctx), rec); err != nil {
			h.logger.Error("audit record not written", "plugin", plugin, "err", err)
		}
	}
	msg := fmt.Sprintf("%s: %s", method, reason)
	if target != "" {
		msg = fmt.Sprintf("%s %q: %s", method, target, reason)
	}
	return &wire.Error{Code: wire.CodeDenied, Message: msg}
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
		for i, r := range a.Records {
			if memory.Kind(r.Kind) == memory.KindAudit {
				return nil, h.deny(ctx, g.spec.Name, method, r.Namespace, "plugins may not write audit records")
			}
			recs[i] = toRecord(r)
			recs[i].Author = g.spec.Name
		}
		var stored []memory.Record
		if stored, err = g.mem.Put(ctx, recs...); err == nil {
			res = wire.MemoryRecords{Records: fromRecords(stored)}
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
		if errors.Is(err, memory.ErrDenied) {
			// The scoped store wrote the audit record.
			h.logger.Warn("plugin capability denied", "audit", true, "plugin", g.spec.Name, "method", method, "err", err)
		}
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
		return nil, h.deny(ctx, g.spec.Name, method, u.Host, "host not granted")
	}
	timeout := g.limits.CallTimeout
	if a.Timeout > 0 && a.Timeout < timeout {
		timeout = a.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if a.Method == "" {
		a.Method = http.MethodGet
	}
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
			return nil, h.deny(ctx, g.spec.Name, method, rd.to, "redirect to a host that is not granted")
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
