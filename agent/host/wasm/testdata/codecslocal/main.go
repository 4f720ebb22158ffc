// Command codecslocal's tool types are declared inside a function, where
// the codecs the build generates cannot name them: the build ships it with
// the reflective codec alone (TestGeneratedCodecs).
package main

import (
	"context"

	"github.com/depai/depai/sdk"
)

func init() {
	type item struct {
		Name string `json:"name"`
	}
	sdk.Plugin("codecslocal", "0.1.0")
	sdk.Tool("codecslocal.echo", "Returns its input.", func(_ context.Context, in item) (item, error) { return in, nil })
}

func main() { sdk.Main() }
