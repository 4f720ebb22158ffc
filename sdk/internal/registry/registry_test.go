package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/sdk/wire"
)

func TestLazyToolsAndErrors(t *testing.T) {
	r := New()
	r.SetInfo("p", "1")
	calls := 0
	r.AddLazyTool("p.ok", func() (wire.ToolDef, error) {
		calls++
		return wire.ToolDef{Name: "p.ok"}, nil
	}, func(context.Context, json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`1`), nil })
	r.AddLazyTool("p.bad", func() (wire.ToolDef, error) { return wire.ToolDef{}, errors.New("tool p.bad: input: chan int") }, nil)
	r.Fail(errors.New("sensor s: output: func"))
	if calls != 0 {
		t.Fatal("a lazy definition ran before the manifest was asked for")
	}
	for range 2 {
		m := r.Manifest()
		if len(m.Tools) != 1 || m.Tools[0].Name != "p.ok" || strings.Join(m.Errors, "|") != "sensor s: output: func|tool p.bad: input: chan int" {
			t.Fatalf("manifest = %+v", m)
		}
	}
	if calls != 1 {
		t.Errorf("lazy definition ran %d times; want once", calls)
	}
}

func TestDispatch(t *testing.T) {
	r := New()
	var checked []bool
	r.AddTool(wire.ToolDef{Name: "echo"}, func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
		checked = append(checked, InputChecked(ctx))
		return p, nil
	})
	r.AddTool(wire.ToolDef{Name: "wrapped"}, func(context.Context, json.RawMessage) (json.RawMessage, error) {
		return nil, fmt.Errorf("ctx: %w", wire.Errorf(wire.CodeDenied, "no"))
	})
	r.AddTool(wire.ToolDef{Name: "panic"}, func(context.Context, json.RawMessage) (json.RawMessage, error) { panic("oops") })
	ctx := context.Background()
	if res := r.Dispatch(ctx, nil, wire.Call{Method: "echo", Payload: json.RawMessage(`{"a":1}`), Checked: true}); string(res.Payload) != `{"a":1}` {
		t.Errorf("echo = %+v", res)
	}
	r.Dispatch(ctx, nil, wire.Call{Method: "echo"})
	if len(checked) != 2 || !checked[0] || checked[1] {
		t.Errorf("InputChecked = %v; want [true false]", checked)
	}
	for method, want := range map[string]string{"wrapped": wire.CodeDenied, "panic": wire.CodeCrashed, "nope": wire.CodeNotFound} {
		if res := r.Dispatch(ctx, nil, wire.Call{Method: method}); res.Error == nil || res.Error.Code != want {
			t.Errorf("%s = %+v; want code %s", method, res, want)
		}
	}
	var m wire.Manifest
	if res := r.Dispatch(ctx, nil, wire.Call{Method: wire.MethodDescribe}); json.Unmarshal(res.Payload, &m) != nil || len(m.Tools) != 3 {
		t.Errorf("describe = %s", res.Payload)
	}
}

type hostFunc func(context.Context, string, []byte) ([]byte, error)

func (f hostFunc) HostCall(ctx context.Context, m string, p []byte) ([]byte, error) {
	return f(ctx, m, p)
}

// TestRunHooks: $run runs every hook with the host in its context, waits for
// all of them and reports the first failure; a panic is a crashed result
// whose message carries no stack.
func TestRunHooks(t *testing.T) {
	r := New()
	if r.Manifest().Run {
		t.Fatal("Run set with no hooks")
	}
	saw := make(chan bool, 2)
	r.AddRun(func(ctx context.Context) error {
		saw <- Host(ctx) != nil
		<-ctx.Done()
		return nil
	})
	r.AddRun(func(ctx context.Context) error {
		saw <- Host(ctx) != nil
		return wire.Errorf(wire.CodeUnavailable, "port gone")
	})
	if !r.Manifest().Run {
		t.Fatal("manifest does not say the plugin has a run hook")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan wire.Result)
	go func() {
		done <- r.Dispatch(ctx, hostFunc(func(context.Context, string, []byte) ([]byte, error) { return nil, nil }), wire.Call{Method: wire.MethodRun})
	}()
	for range 2 {
		if !<-saw {
			t.Fatal("a run hook had no host in its context")
		}
	}
	select {
	case res := <-done:
		t.Fatalf("$run returned %+v while a hook still ran", res)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if res := <-done; res.Error == nil || res.Error.Code != wire.CodeUnavailable {
		t.Fatalf("$run = %+v; want the failing hook's error", res)
	}

	p := New()
	p.AddRun(func(context.Context) error { panic("boom") })
	p.AddTool(wire.ToolDef{Name: "p.panic"}, func(context.Context, json.RawMessage) (json.RawMessage, error) { panic("bang") })
	for _, m := range []string{wire.MethodRun, "p.panic"} {
		res := p.Dispatch(context.Background(), nil, wire.Call{Method: m})
		if res.Error == nil || res.Error.Code != wire.CodeCrashed || strings.Contains(res.Error.Message, "goroutine") || strings.Contains(res.Error.Message, ".go:") {
			t.Fatalf("%s = %+v; want crashed with one line, the stack kept out", m, res.Error)
		}
	}
}
