//go:build !linux

package process

import (
	"errors"
	"syscall"
)

// sysProcAttr has no parent-death signal outside Linux; a killed agent may
// leave its plugins running there until they notice the broken connection.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func limitMemory(int, uint64) error {
	return errors.New("a memory limit for process plugins needs Linux")
}
