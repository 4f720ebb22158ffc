//go:build linux

// Command launcher is the process-plugin launcher (see package launch):
// standard library only, so that it starts in a millisecond. Its builds for
// linux/amd64 and linux/arm64 are in bin/, embedded by the process
// transport; `go generate ./agent/host/process` rebuilds them, and
// TestEmbeddedLauncherIsItsSource checks that they are this source.
package main

import (
	"os"

	"github.com/depai/depai/agent/host/process/internal/launch"
)

func main() { launch.Main(os.Args[1:]) }
