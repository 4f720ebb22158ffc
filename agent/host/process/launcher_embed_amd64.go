//go:build linux && amd64

package process

import _ "embed"

//go:embed internal/launcher/bin/linux-amd64
var embeddedLauncher []byte
