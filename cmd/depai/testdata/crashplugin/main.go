// Command crashplugin is a plugin with a bug `depai plugin test` must catch:
// its tool panics on the zero input.
package main

import (
	"context"

	"github.com/depai/depai/sdk"
)

type in struct {
	Items []string `json:"items"`
}

func init() {
	sdk.Plugin("crash", "0.0.1")
	sdk.Tool("crash.first", "Returns the first item.", func(_ context.Context, in in) (string, error) {
		return in.Items[0], nil
	})
}

func main() { sdk.Main() }
