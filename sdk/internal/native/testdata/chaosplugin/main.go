// Command chaosplugin is the process plugin the host's tests and chaos suite
// load: well-behaved tools next to ones that panic, spin, hog memory, die,
// answer garbage or too much, and call host capabilities.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/depai/depai/sdk/internal/native"
	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

var obj = json.RawMessage(`{"type":"object"}`)

func tool(name string, h registry.Handler) {
	registry.Default.AddTool(wire.ToolDef{Name: name, Description: name, Input: obj}, h)
}

func init() {
	registry.Default.SetInfo("chaos", "0.1.0")
	registry.Default.Request(wire.Capabilities{Emit: []string{"chaos"}})
	tool("echo", func(_ context.Context, p json.RawMessage) (json.RawMessage, error) { return p, nil })
	tool("pid", func(context.Context, json.RawMessage) (json.RawMessage, error) {
		return json.Marshal(os.Getpid())
	})
	tool("panic", func(context.Context, json.RawMessage) (json.RawMessage, error) { panic("chaos: panic in handler") })
	tool("panic_goroutine", func(context.Context, json.RawMessage) (json.RawMessage, error) {
		go func() { panic("chaos: panic in a goroutine") }()
		time.Sleep(time.Minute)
		return nil, nil
	})
	tool("spin", func(context.Context, json.RawMessage) (json.RawMessage, error) {
		for {
		}
	})
	tool("hog", func(context.Context, json.RawMessage) (json.RawMessage, error) {
		var keep [][]byte
		for {
			b := make([]byte, 16<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	})
	tool("exit", func(context.Context, json.RawMessage) (json.RawMessage, error) {
		os.Exit(7)
		return nil, nil
	})
	tool("sleep", func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
		var d string
		if err := json.Unmarshal(p, &d); err != nil {
			return nil, err
		}
		dur, err := time.ParseDuration(d)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "chaos: sleeping %v\n", dur)
		select {
		case <-time.After(dur):
			return json.RawMessage(`"slept"`), nil
		case <-ctx.Done():
			return nil, wire.Errorf(wire.CodeTimeout, "sleep: %v", ctx.Err())
		}
	})
	tool("garbage", func(context.Context, json.RawMessage) (json.RawMessage, error) {
		fmt.Println("garbage on stdout {{{")
		os.NewFile(1, "fd1").WriteString("garbage on the handshake pipe\n")
		return json.RawMessage(`{"not json`), nil
	})
	tool("big", func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
		var n int
		if err := json.Unmarshal(p, &n); err != nil {
			return nil, err
		}
		return json.Marshal(strings.Repeat("x", n))
	})
	tool("stderr", func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
		fmt.Fprintf(os.Stderr, "chaos says %s\n", p)
		return nil, nil
	})
	tool("host", func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
		var in struct {
			Method  string          `json:"method"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(p, &in); err != nil {
			return nil, err
		}
		return registry.Host(ctx).HostCall(ctx, in.Method, in.Payload)
	})
}

func main() {
	if err := native.Serve(registry.Default); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
