package process

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr kills the plugin when the agent dies, however it dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// limitMemory caps the plugin's data segment (heap and anonymous mappings).
func limitMemory(pid int, bytes uint64) error {
	return unix.Prlimit(pid, unix.RLIMIT_DATA, &unix.Rlimit{Cur: bytes, Max: bytes}, nil)
}
