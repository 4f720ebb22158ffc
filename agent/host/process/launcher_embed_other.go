//go:build linux && !amd64 && !arm64

package process

// embeddedLauncher: no launcher binary is built for this architecture; the
// host re-executes its own binary as the launcher (see launcherFor).
var embeddedLauncher []byte
