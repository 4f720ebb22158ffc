//go:build linux

// Package launch is the process-plugin launcher's half of the host: what
// runs between the fork and the plugin's first instruction. It confines its
// own process — rlimits, no capabilities, no_new_privs, the Landlock
// ruleset and the seccomp program the host built — and execs the plugin,
// so nothing depends on the plugin's cooperation.
//
// It imports only the standard library: the launcher binary built from it
// (../launcher, embedded in every binary that links the process transport)
// starts in about a millisecond, where re-executing the agent's own binary
// ran every package's init first (some 15–25 ms for depai). The host does
// the work that needs libraries — building the ruleset and assembling the
// filter — and hands over the result: the ruleset as an inherited file
// descriptor, the filter as raw BPF in an argument. Args and Main are the
// two ends of that one protocol.
package launch

import (
	"encoding/hex"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// version is the first argument; a launcher that does not know it refuses
// to run rather than misread the rest.
const version = "v1"

// Probe is the argument that makes the launcher exit 0 at once: the host
// runs it so to learn that the launcher runs at all, and that it runs in a
// new PID namespace.
const Probe = "probe"

// Spec is what the launcher applies before it execs Path.
type Spec struct {
	Path      string
	DataLimit uint64 // RLIMIT_DATA, bytes
	// LandlockFD is the launcher's descriptor of a Landlock ruleset the host
	// built (landlock_create_ruleset and its rules); -1: no Landlock.
	LandlockFD    int
	LandlockFlags uint32 // landlock_restrict_self's flags
	// Seccomp is a classic BPF program (struct sock_filter, 8 bytes an
	// instruction, native byte order); empty: no filter.
	Seccomp []byte
}

// Args encodes s as the launcher's arguments (after the program name).
func Args(s Spec) []string {
	return []string{version,
		strconv.FormatUint(s.DataLimit, 10),
		strconv.Itoa(s.LandlockFD),
		strconv.FormatUint(uint64(s.LandlockFlags), 10),
		hex.EncodeToString(s.Seccomp),
		s.Path}
}

// parse is Args' inverse.
func parse(args []string) (Spec, string) {
	if len(args) != 6 || args[0] != version {
		return Spec{}, "want " + version + " and 5 arguments from the host, have " + strconv.Itoa(len(args)) + " arguments"
	}
	var s Spec
	var err error
	if s.DataLimit, err = strconv.ParseUint(args[1], 10, 64); err != nil {
		return Spec{}, "data limit " + strconv.Quote(args[1])
	}
	if s.LandlockFD, err = strconv.Atoi(args[2]); err != nil || s.LandlockFD < -1 {
		return Spec{}, "Landlock descriptor " + strconv.Quote(args[2])
	}
	flags, err := strconv.ParseUint(args[3], 10, 32)
	if err != nil {
		return Spec{}, "Landlock flags " + strconv.Quote(args[3])
	}
	s.LandlockFlags = uint32(flags)
	if s.Seccomp, err = hex.DecodeString(args[4]); err != nil || len(s.Seccomp)%8 != 0 || len(s.Seccomp) > 8*4096 {
		return Spec{}, "seccomp program: want whole 8-byte instructions in hex, at most 4096"
	}
	if s.Path = args[5]; s.Path == "" || s.Path[0] != '/' {
		return Spec{}, "plugin path " + strconv.Quote(args[5]) + ": want an absolute path"
	}
	return s, ""
}

// Main confines this process as args (Args' encoding) say and execs the
// plugin with this process's environment; it returns only on a failure,
// after writing what failed to standard error, by exiting with status 126.
// Args of just Probe exit 0.
func Main(args []string) {
	// The thread that confines itself is the one that execs: no_new_privs,
	// the capability sets, Landlock and seccomp (without TSYNC) are
	// per-thread, and the exec ends every other thread.
	runtime.LockOSThread()
	if len(args) == 1 && args[0] == Probe {
		os.Exit(0)
	}
	s, bad := parse(args)
	if bad != "" {
		fail("malformed launch arguments: "+bad, nil)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: s.DataLimit, Max: s.DataLimit}); err != nil {
		fail("memory limit", err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		fail("core limit", err)
	}
	dropCapabilities()
	if err := prctl(prSetNoNewPrivs, 1, 0); err != 0 {
		fail("no_new_privs", err)
	}
	if s.LandlockFD >= 0 {
		if _, _, err := syscall.RawSyscall(sysLandlockRestrictSelf, uintptr(s.LandlockFD), uintptr(s.LandlockFlags), 0); err != 0 {
			fail("landlock_restrict_self", err)
		}
	}
	if len(s.Seccomp) > 0 {
		// A []byte is byte-aligned and struct sock_filter needs 4: copy it.
		prog := make([]sockFilter, len(s.Seccomp)/8)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), len(s.Seccomp)), s.Seccomp)
		fprog := sockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := prctl(prSetSeccomp, seccompModeFilter, uintptr(unsafe.Pointer(&fprog))); err != 0 {
			fail("seccomp", err)
		}
	}
	markCloseOnExec()
	err := syscall.Exec(s.Path, []string{s.Path}, syscall.Environ())
	fail("exec "+s.Path, err)
}

// markCloseOnExec marks every descriptor above 2 close-on-exec: the
// plugin inherits standard input, output and error, nothing else — not the
// ruleset, not the launcher's own file. They are not closed here: the Go
// runtime's own descriptors (its poller's) are among them, in use by other
// threads until the exec, and closing them killed about one start in 200
// of the re-executed agent binary ("netpoll failed").
func markCloseOnExec() {
	if _, _, err := syscall.RawSyscall(sysCloseRange, 3, ^uintptr(0)>>32, closeRangeCloexec); err != 0 {
		for fd := uintptr(3); fd < 1024; fd++ {
			syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_SETFD, syscall.FD_CLOEXEC)
		}
	}
}

// dropCapabilities empties the bounding, ambient and inheritable sets, so
// that not even a plugin run by root gains a capability at exec (it could
// otherwise raise its rlimits or override file permissions).
func dropCapabilities() {
	for c := uintptr(0); c <= 63; c++ {
		if err := prctl(prCapBSetDrop, c, 0); err != 0 && err != syscall.EINVAL && err != syscall.EPERM {
			fail("drop capability "+strconv.Itoa(int(c)), err)
		}
	}
	if err := prctl(prCapAmbient, prCapAmbientClearAll, 0); err != 0 && err != syscall.EINVAL {
		fail("clear ambient capabilities", err)
	}
	hdr := capHeader{Version: linuxCapabilityVersion3}
	var data [2]capData
	if _, _, err := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != 0 {
		fail("capabilities", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if _, _, err := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != 0 {
		fail("clear inheritable capabilities", err)
	}
}

func prctl(op, a, b uintptr) syscall.Errno {
	_, _, err := syscall.RawSyscall6(syscall.SYS_PRCTL, op, a, b, 0, 0, 0)
	return err
}

// fail reports what failed on standard error (which the host logs under
// the plugin's name) and exits 126, as a shell does for a command it found
// and could not run.
func fail(what string, err error) {
	msg := "depai plugin launcher: " + what
	if err != nil {
		msg += ": " + err.Error()
	}
	msg += "\n"
	_, _ = syscall.Write(2, []byte(msg))
	os.Exit(126)
}

// Linux's numbers; the system calls added since 5.x have one number on
// every architecture.
const (
	sysCloseRange           = 436
	closeRangeCloexec       = 1 << 2 // CLOSE_RANGE_CLOEXEC, Linux 5.11
	sysLandlockRestrictSelf = 446

	prSetNoNewPrivs         = 38
	prCapBSetDrop           = 24
	prCapAmbient            = 47
	prCapAmbientClearAll    = 4
	prSetSeccomp            = 22
	seccompModeFilter       = 2
	linuxCapabilityVersion3 = 0x20080522
)

type sockFilter struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

type sockFprog struct {
	Len    uint16
	Filter *sockFilter
}

type capHeader struct {
	Version uint32
	Pid     int32
}

type capData struct {
	Effective, Permitted, Inheritable uint32
}
