//go:build !wasip1

package sdk

import (
	"fmt"
	"os"

	"github.com/depai/depai/sdk/internal/native"
	"github.com/depai/depai/sdk/internal/registry"
)

// Main serves the plugin's registered tools and sensors. Built natively it
// is a process plugin (hashicorp/go-plugin over gRPC) that a depai agent
// starts and supervises; run by hand it explains that and exits with status
// 1. Built with GOOS=wasip1 the same source is a WASM plugin instead.
func Main() {
	if err := native.Serve(registry.Default); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
