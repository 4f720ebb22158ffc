//go:build !linux

package process

import (
	"errors"
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

// sysProcAttr has no parent-death signal outside Linux; a killed agent may
// leave its plugins running there until they notice the broken connection.
func sysProcAttr(bool) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

func launch(string) error { return errors.New("the plugin launcher needs Linux") }

// cpuTime is not measured outside Linux; idle CPU goes unwatched there.
func cpuTime(int) (time.Duration, bool) { return 0, false }
