package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/depai/depai/sdk/internal/codec"
	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// Types of the host capabilities, shared with the host through sdk/wire.
type (
	Record   = wire.MemoryRecord
	Query    = wire.MemoryQuery
	Request  = wire.HTTPRequest
	Response = wire.HTTPResponse
)

// hostCall sends one host method with args encoded as JSON and decodes the
// result into R. Denials come back as *wire.Error with code denied.
func hostCall[R any](ctx context.Context, method string, args any) (R, error) {
	var res R
	h := registry.Host(ctx)
	if h == nil {
		return res, wire.Errorf(wire.CodeUnavailable, "%s: no host in context; call host helpers with the ctx your handler received", method)
	}
	payload, err := codec.Marshal(args)
	if err != nil {
		return res, fmt.Errorf("%s: encode arguments: %w", method, err)
	}
	out, err := h.HostCall(ctx, method, payload)
	if err != nil {
		return res, err
	}
	if len(out) > 0 {
		if err := codec.Unmarshal(out, &res); err != nil {
			return res, fmt.Errorf("%s: decode host result: %w", method, err)
		}
	}
	return res, nil
}

// Log writes to the agent's log, tagged with the plugin's name. Attrs are
// key/value pairs as in log/slog. Logging never needs a grant.
func Log(ctx context.Context, level slog.Level, msg string, attrs ...any) {
	args := wire.LogArgs{Level: levelName(level), Msg: msg}
	if len(attrs) > 0 {
		args.Attrs = make(map[string]any, len(attrs)/2)
		for i := 0; i < len(attrs); i += 2 {
			key := fmt.Sprint(attrs[i])
			if i+1 == len(attrs) {
				args.Attrs["!BADKEY"] = key
				break
			}
			args.Attrs[key] = attrs[i+1]
		}
	}
	// A log line that cannot be delivered has nowhere else to go.
	_, _ = hostCall[struct{}](ctx, wire.HostLog, args)
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	default:
		return "error"
	}
}

// MemoryPut appends records to memory and returns them as stored. Each
// record's namespace must be granted for writing; the author is the plugin.
func MemoryPut(ctx context.Context, recs ...Record) ([]Record, error) {
	res, err := hostCall[wire.MemoryRecords](ctx, wire.HostMemoryPut, wire.MemoryPutArgs{Records: recs})
	return res.Records, err
}

// MemoryGet returns one record by ID from a namespace granted for reading.
func MemoryGet(ctx context.Context, id string) (Record, error) {
	return hostCall[Record](ctx, wire.HostMemoryGet, wire.MemoryGetArgs{ID: id})
}

// MemoryQuery returns the records matching q, newest first unless
// q.Ascending. q.Namespace must be granted for reading.
func MemoryQuery(ctx context.Context, q Query) ([]Record, error) {
	res, err := hostCall[wire.MemoryRecords](ctx, wire.HostMemoryQuery, q)
	return res.Records, err
}

// HTTPFetch performs an HTTP request to a granted host. The host bounds its
// time and size and refuses redirects to hosts that are not granted.
func HTTPFetch(ctx context.Context, req Request) (Response, error) {
	return hostCall[Response](ctx, wire.HostHTTPFetch, req)
}

// Emit publishes v, encoded as JSON, on a granted topic; the agent turns it
// into an event.
func Emit(ctx context.Context, topic string, v any) error {
	b, err := codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("emit %s: encode: %w", topic, err)
	}
	_, err = hostCall[struct{}](ctx, wire.HostEmit, wire.EmitArgs{Topic: topic, Payload: b})
	return err
}

// Config returns the value the agent's config gives key, for a granted key.
func Config(ctx context.Context, key string) (string, error) {
	res, err := hostCall[wire.Value](ctx, wire.HostConfig, wire.KeyArgs{Key: key})
	return res.Value, err
}

// ConfigValues reads the values of keys; a key that is granted but has no
// value in the agent's config is left out of the map, so a plugin keeps its
// default for it. Any other failure is an error naming the key.
func ConfigValues(ctx context.Context, keys ...string) (map[string]string, error) {
	vals := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := Config(ctx, k)
		if we, ok := errors.AsType[*wire.Error](err); ok && we.Code == wire.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", k, err)
		}
		vals[k] = v
	}
	return vals, nil
}

// Secret returns a granted secret's value.
func Secret(ctx context.Context, name string) (string, error) {
	res, err := hostCall[wire.Value](ctx, wire.HostSecret, wire.KeyArgs{Key: name})
	return res.Value, err
}

// Now returns the host's wall clock; it needs the clock grant.
func Now(ctx context.Context) (time.Time, error) {
	res, err := hostCall[wire.Clock](ctx, wire.HostClock, struct{}{})
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, res.UnixNano), nil
}
