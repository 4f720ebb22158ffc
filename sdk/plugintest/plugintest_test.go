package plugintest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

// The plugin of this test binary: a run hook that reads its config with the
// host in its context and emits until it is unloaded.
var stopped = make(chan string, 4)

func init() {
	sdk.Plugin("runner", "0.0.1")
	sdk.Requests(wire.Capabilities{Config: []string{"name"}, Emit: []string{"ticks"}, Clock: true})
	sdk.Tool("runner.noop", "Does nothing.", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil })
	sdk.Run(func(ctx context.Context) error {
		name, err := sdk.Config(ctx, "name")
		if err != nil {
			return err
		}
		// Told however it ends: the unload may cancel an Emit in flight.
		defer func() { stopped <- name }()
		for i := 0; ; i++ {
			if err := sdk.Emit(ctx, "ticks", map[string]any{"name": name, "i": i}); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
}

// TestRunHook: the in-process transport starts sdk.Run after the load,
// with the host in its context (config, emit), with no call made, and
// Unload ends it before it returns.
func TestRunHook(t *testing.T) {
	pt := plugintest.New(t, plugintest.Config(map[string]string{"name": "a"}))
	deadline := time.Now().Add(5 * time.Second)
	for len(pt.Emitted()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("run hook emitted %d events in 5s; want 3", len(pt.Emitted()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	var ev struct{ Name string }
	if e := pt.Emitted()[0]; e.Topic != "ticks" || json.Unmarshal(e.Payload, &ev) != nil || ev.Name != "a" {
		t.Fatalf("first event %s %s", e.Topic, e.Payload)
	}
	// The describe-only load's hook ran too (with no config) and ended.
	if err := pt.Unload(); err != nil {
		t.Fatal(err)
	}
	ended := false
	for len(stopped) > 0 {
		ended = ended || <-stopped == "a"
	}
	if !ended {
		t.Fatal("Unload returned before the run hook ended")
	}
	n := len(pt.Emitted())
	time.Sleep(50 * time.Millisecond)
	if m := len(pt.Emitted()); m != n {
		t.Fatalf("%d events after unload", m-n)
	}
}
