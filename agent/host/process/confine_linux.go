package process

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"

	"github.com/depai/depai/agent/host"
)

// kernelFeatures is what this kernel can enforce.
type kernelFeatures struct {
	landlock int // Landlock ABI; 0: none
	seccomp  bool
	pidns    bool
}

func (k kernelFeatures) describe() string {
	return fmt.Sprintf("Landlock ABI %d, seccomp %v, PID namespaces %v", k.landlock, k.seccomp, k.pidns)
}

var (
	probeOnce sync.Once
	probed    kernelFeatures
)

// probeKernel probes the kernel once a process: the launcher's memfd and
// its probe runs are set up with it.
func probeKernel() kernelFeatures {
	probeOnce.Do(func() {
		probed.landlock = landlockABI()
		probed.seccomp = seccomp.Supported()
		probed.pidns = pidnsWorks()
	})
	return probed
}

// kernel probes the kernel once, less what Config.Unavailable rules out.
func (t *transport) kernel() kernelFeatures {
	k := probeKernel()
	for _, f := range t.cfg.Unavailable {
		switch f {
		case host.FeatureLandlock:
			k.landlock = 0
		case host.FeatureLandlockNet:
			k.landlock = min(k.landlock, 3)
		case host.FeatureSignals:
			k.landlock = min(k.landlock, 5)
		case host.FeatureSeccomp:
			k.seccomp = false
		case host.FeaturePIDNS:
			k.pidns = false
		}
	}
	return k
}

func landlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// pidnsWorks reports whether the launcher's probe ran in a new PID
// namespace.
func pidnsWorks() bool {
	_, ok := launcherFor()
	return ok
}

// pidnsFlags are the clone flags of a plugin in its own PID namespace: as
// root the namespace alone, otherwise inside a user namespace that maps
// only the agent's own uid.
func pidnsFlags() uintptr {
	if os.Geteuid() == 0 {
		return syscall.CLONE_NEWPID
	}
	return syscall.CLONE_NEWPID | syscall.CLONE_NEWUSER
}

// sysProcAttr ends the plugin when the agent dies, however it dies, and
// gives it its own process group — and, with pidns, its own PID namespace,
// so that its children die with it too. The signal is SIGTERM, not SIGKILL,
// so that an actuator plugin's SDK can stop its machine before it exits
// (wire.StopHostLost); the SDK exits within its host-lost grace in any case.
// As the first process of its namespace the plugin receives SIGTERM only
// if it handles it, as every Go program does; a non-Go plugin that does not
// still ends when the SDK's host connection is gone, or not at all.
func sysProcAttr(pidns bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if pidns {
		a.Cloneflags = pidnsFlags()
		if os.Geteuid() != 0 {
			a.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
			a.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
		}
	}
	return a
}

// killGroup kills the plugin's process group (its children too).
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// seccompFilter refuses (EPERM) what a plugin has no business doing and
// Landlock does not cover.
func seccompFilter(udp bool) seccomp.Filter {
	const (
		afInet, afInet6, afPacket = 2, 10, 17
		sockDgramBit              = 2 // SOCK_DGRAM 2, SOCK_RAW 3, SOCK_DCCP 6, SOCK_PACKET 10
		sockRaw                   = 3
		sockRDMBit                = 4 // SOCK_RDM 4, SOCK_SEQPACKET 5: SCTP and others Landlock does not see
		ipprotoSCTP, ipprotoMPTCP = 132, 262
	)
	// Landlock's network rules cover plain TCP only: every other way to
	// reach a host from an IP socket is refused here.
	socket := []seccomp.NameWithConditions{
		{Name: "socket", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: afPacket}}},
		{Name: "socket", Conditions: seccomp.ArgumentConditions{{Argument: 2, Operation: seccomp.Equal, Value: ipprotoMPTCP}}},
		{Name: "socket", Conditions: seccomp.ArgumentConditions{{Argument: 2, Operation: seccomp.Equal, Value: ipprotoSCTP}}},
	}
	for _, af := range []uint64{afInet, afInet6} {
		socket = append(socket, seccomp.NameWithConditions{Name: "socket", Conditions: seccomp.ArgumentConditions{
			{Argument: 0, Operation: seccomp.Equal, Value: af},
			{Argument: 1, Operation: seccomp.BitsSet, Value: sockRDMBit},
		}})
		bits := uint64(sockDgramBit)
		if udp {
			bits = sockRaw
		}
		socket = append(socket, seccomp.NameWithConditions{Name: "socket", Conditions: seccomp.ArgumentConditions{
			{Argument: 0, Operation: seccomp.Equal, Value: af},
			{Argument: 1, Operation: seccomp.BitsSet, Value: bits},
		}})
	}
	return seccomp.Filter{
		NoNewPrivs: true, // this thread's, like the filter itself: it is the one that execs
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionAllow,
			Syscalls: []seccomp.SyscallGroup{{
				Action: seccomp.ActionErrno,
				Names: slices.Clone([]string{
					"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
					"bpf", "perf_event_open", "userfaultfd",
					"keyctl", "add_key", "request_key",
					"mount", "umount2", "pivot_root", "chroot", "move_mount", "fsopen", "fsmount", "fspick", "open_tree", "mount_setattr",
					"setns", "open_by_handle_at", "name_to_handle_at",
					"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
					"reboot", "swapon", "swapoff", "iopl", "ioperm", "acct", "quotactl",
					"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
				}),
				NamesWithCondtions: socket,
			}},
		},
	}
}

// cpuTime is the user+system CPU time a process has used, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s: Linux's
// USER_HZ on every architecture Go supports).
func cpuTime(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStat(b)
}

// parseStat reads utime+stime from the contents of /proc/<pid>/stat.
func parseStat(b []byte) (time.Duration, bool) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * 10 * time.Millisecond, true
}
