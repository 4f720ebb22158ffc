package process

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr ends the plugin when the agent dies, however it dies. The
// signal is SIGTERM, not SIGKILL, so that an actuator plugin's SDK can stop
// its machine before it exits (wire.StopHostLost); a plugin without a stop
// handler dies of it at once, and the SDK exits within its host-lost grace
// in any case.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// limitMemory caps the plugin's data segment (heap and anonymous mappings).
func limitMemory(pid int, bytes uint64) error {
	return unix.Prlimit(pid, unix.RLIMIT_DATA, &unix.Rlimit{Cur: bytes, Max: bytes}, nil)
}
