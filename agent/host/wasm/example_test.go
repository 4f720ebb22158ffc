package wasm_test

import (
	"context"
	"fmt"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/sdk/wire"
)

// ExampleNew loads a WASM plugin directly through the transport, as the
// host does; most programs use host.New with this transport instead.
func ExampleNew() {
	ctx := context.Background()
	tr, err := wasm.New(wasm.Config{CacheDir: "/var/cache/depai/wasm"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close(ctx)
	dispatcher := host.New(host.Config{}) // serves the plugin's host calls
	inst, err := tr.Load(ctx, host.LoadSpec{Name: "hello", Path: "hello.wasm", Host: dispatcher})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inst.Close(ctx)
	res := inst.Call(ctx, wire.Call{Method: "hello.greet", Payload: []byte(`{"name":"Ada"}`)})
	fmt.Println(string(res.Payload), res.Error)
}
