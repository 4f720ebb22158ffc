// Command sdkplugin exercises every host helper of the SDK: one tool per
// host capability. agent/host/hosttest's tests run its WASM build behind
// the real host.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

type keyIn struct {
	Key string `json:"key"`
}

type valueOut struct {
	Value string `json:"value"`
}

type fetchIn struct {
	URL string `json:"url"`
}

type fetchOut struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

type memOut struct {
	ID, Author, Text string
	Found            int
}

type none struct{}

var requests = wire.Capabilities{
	Config: []string{"region"}, Secrets: []string{"token"}, Emit: []string{"alerts"}, Clock: true,
	MemoryRead: []string{"shared"}, MemoryWrite: []string{"shared/sdktest"}, Actuator: true,
}

func init() {
	sdk.Plugin("sdktest", "1.2.3")
	sdk.Requests(requests)
	sdk.Tool("t.config", "config value", func(ctx context.Context, in keyIn) (valueOut, error) {
		v, err := sdk.Config(ctx, in.Key)
		return valueOut{v}, err
	})
	sdk.Tool("t.secret", "secret value", func(ctx context.Context, in keyIn) (valueOut, error) {
		v, err := sdk.Secret(ctx, in.Key)
		return valueOut{v}, err
	})
	sdk.Tool("t.now", "host clock", func(ctx context.Context, _ none) (valueOut, error) {
		now, err := sdk.Now(ctx)
		return valueOut{now.UTC().Format(time.RFC3339)}, err
	})
	sdk.Tool("t.emit", "publish", func(ctx context.Context, in keyIn) (none, error) {
		return none{}, sdk.Emit(ctx, in.Key, map[string]int{"level": 3})
	})
	sdk.Tool("t.fetch", "HTTP GET", func(ctx context.Context, in fetchIn) (fetchOut, error) {
		r, err := sdk.HTTPFetch(ctx, sdk.Request{URL: in.URL})
		return fetchOut{r.Status, string(r.Body)}, err
	})
	sdk.Tool("t.mem", "put, get and query", func(ctx context.Context, in keyIn) (memOut, error) {
		recs, err := sdk.MemoryPut(ctx, sdk.Record{Namespace: in.Key, Kind: "observation", Text: "the sky is blue", Author: "forged"})
		if err != nil {
			return memOut{}, err
		}
		got, err := sdk.MemoryGet(ctx, recs[0].ID)
		if err != nil {
			return memOut{}, err
		}
		all, err := sdk.MemoryQuery(ctx, sdk.Query{Namespace: "shared"})
		return memOut{ID: got.ID, Author: got.Author, Text: got.Text, Found: len(all)}, err
	})
	sdk.Tool("t.log", "log", func(ctx context.Context, _ none) (none, error) {
		sdk.Log(ctx, slog.LevelWarn, "careful", "speed", 3, "odd")
		return none{}, nil
	})
	sdk.Tool("t.coded", "a wrapped coded error", func(context.Context, none) (none, error) {
		return none{}, fmt.Errorf("looking: %w", sdk.Errorf(wire.CodeNotFound, "no such widget"))
	})
	sdk.Tool("t.plain", "an uncoded error", func(context.Context, none) (none, error) {
		return none{}, errors.New("boom")
	})
	sdk.Tool("t.move", "an actuator", func(context.Context, none) (none, error) { return none{}, nil }, sdk.Actuator())
	n := 0
	sdk.Sensor("t.count", "counts polls", time.Second, func(context.Context) (int, error) { n++; return n, nil })
}

func main() { sdk.Main() }
