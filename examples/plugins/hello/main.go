// Command hello is the smallest useful depai plugin: one tool, hello.greet,
// that greets someone by name. Build it for the sandbox with
//
//	depai plugin build . --wasm -o hello.wasm
//
// (its manifest travels in the module, so it is smaller and starts faster
// than `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`, which works
// too), or natively (go build .) to run it as a process plugin.
package main

import (
	"context"
	"strings"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

// GreetIn is hello.greet's input.
type GreetIn struct {
	Name string `json:"name" jsonschema:"who to greet"`
}

// GreetOut is hello.greet's result.
type GreetOut struct {
	Greeting string `json:"greeting"`
}

func init() {
	sdk.Plugin("hello", "0.1.0")
	sdk.Tool("hello.greet", "Greets someone by name.", greet)
}

func greet(_ context.Context, in GreetIn) (GreetOut, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return GreetOut{}, sdk.Errorf(wire.CodeInvalidArgument, "name is empty; say who to greet")
	}
	return GreetOut{Greeting: "Hello, " + name + "!"}, nil
}

func main() { sdk.Main() }
