//go:build !linux

package process

import (
	"os/exec"
	"syscall"
	"time"
)

// kernelFeatures: outside Linux no confinement feature is available; a
// process plugin there loads only with every feature in unconfined_ok.
type kernelFeatures struct {
	landlock int
	seccomp  bool
	pidns    bool
}

func (kernelFeatures) describe() string { return "not Linux" }

func (t *transport) kernel() kernelFeatures { return kernelFeatures{} }

func probeKernel() kernelFeatures { return kernelFeatures{} }

// sysProcAttr has no parent-death signal outside Linux; a killed agent may
// leave its plugins running there until they notice the broken connection.
func sysProcAttr(bool) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// launcherNote: there is no launcher to fall back from outside Linux.
func launcherNote() string { return "" }

// launchCommand starts the plugin itself: there is no launcher outside
// Linux, as there is nothing for it to enforce.
func launchCommand(l launchSpec) (*exec.Cmd, func(), error) {
	cmd := exec.Command(l.Path)
	cmd.Env = l.Env
	return cmd, func() {}, nil
}

// cpuTime is not measured outside Linux; idle CPU goes unwatched there.
func cpuTime(int) (time.Duration, bool) { return 0, false }
