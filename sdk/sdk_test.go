package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

// The SDK's behaviour behind the real host is tested beside the host, in
// agent/host/hosttest (sdk/ imports nothing of the agent, tests included).

func code(err error) string {
	if we, ok := errors.AsType[*wire.Error](err); ok {
		return we.Code
	}
	return fmt.Sprintf("not a wire error: %v", err)
}

func TestNoHost(t *testing.T) {
	_, err := sdk.Config(context.Background(), "region")
	if code(err) != wire.CodeUnavailable || !strings.Contains(err.Error(), "no host in context") {
		t.Fatalf("Config without a host: %v", err)
	}
}

// ExampleTool registers a typed tool. A plugin does this in init() and
// calls sdk.Main() from main.
func ExampleTool() {
	type In struct {
		Celsius float64 `json:"celsius" jsonschema:"temperature in °C"`
	}
	type Out struct {
		Fahrenheit float64 `json:"fahrenheit"`
	}
	sdk.Plugin("thermo", "0.1.0")
	sdk.Tool("thermo.convert", "Converts °C to °F.", func(_ context.Context, in In) (Out, error) {
		return Out{Fahrenheit: in.Celsius*9/5 + 32}, nil
	})
}
