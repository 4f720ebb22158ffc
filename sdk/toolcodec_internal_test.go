package sdk

import (
	"context"
	"sync"
	"testing"

	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// A native plugin serves calls concurrently: a tool's codec looks its
// generated code up once, and concurrent first calls do not race on it
// (they wrote the lookup's result unguarded; go test -race).
func TestToolCodecConcurrentCalls(t *testing.T) {
	type msg struct {
		Text string `json:"text"`
	}
	Tool("codectest.echo", "Returns its input.", func(_ context.Context, in msg) (msg, error) { return in, nil })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ctx := registry.CallContext(context.Background(), nil, true)
			r := registry.Default.DispatchIn(ctx, wire.Call{Method: "codectest.echo", Payload: []byte(`{"text":"hi"}`), Checked: true})
			if r.Error != nil || string(r.Payload) != `{"text":"hi"}` {
				t.Errorf("codectest.echo = %s, %v", r.Payload, r.Error)
			}
		})
	}
	wg.Wait()
}
