//go:build linux && arm64

package process

import _ "embed"

//go:embed internal/launcher/bin/linux-arm64
var embeddedLauncher []byte
