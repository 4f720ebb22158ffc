//go:build linux

package launch

import (
	"bytes"
	"slices"
	"syscall"
	"testing"
)

func TestArgsRoundTrip(t *testing.T) {
	s := Spec{Path: "/opt/plugins/gnss", DataLimit: 1 << 30, LandlockFD: 4, LandlockFlags: 0, Seccomp: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	got, bad := parse(Args(s))
	if bad != "" || got.Path != s.Path || got.DataLimit != s.DataLimit || got.LandlockFD != 4 || !bytes.Equal(got.Seccomp, s.Seccomp) {
		t.Fatalf("parse(Args(%+v)) = %+v, %q", s, got, bad)
	}
}

// FuzzParse: whatever the arguments, parse names what is wrong or returns
// a spec that Args encodes back to the same arguments.
func FuzzParse(f *testing.F) {
	f.Add("v1", "1073741824", "-1", "0", "", "/bin/true")
	f.Add("v1", "1", "3", "1", "0102030405060708", "/p")
	f.Add("v1", "x", "-2", "9", "abc", "rel")
	f.Fuzz(func(t *testing.T, v, data, fd, flags, prog, path string) {
		args := []string{v, data, fd, flags, prog, path}
		s, bad := parse(args)
		if bad != "" {
			return
		}
		if s.Path == "" || s.Path[0] != '/' || s.LandlockFD < -1 || len(s.Seccomp)%8 != 0 {
			t.Fatalf("parse(%q) = %+v", args, s)
		}
		if again, bad := parse(Args(s)); bad != "" || !slices.Equal(Args(again), Args(s)) {
			t.Fatalf("parse(Args(%+v)) = %+v, %q", s, again, bad)
		}
	})
}

// TestMarkCloseOnExec: descriptors above 2 stay open until the exec and are
// closed by it. They were once closed at once — the Go runtime's poller
// among them, under a thread waiting on it — and about one launch in 200
// died of it.
func TestMarkCloseOnExec(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil { // without O_CLOEXEC
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	markCloseOnExec()
	for _, fd := range p {
		flags, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno != 0 {
			t.Fatalf("descriptor %d was closed: %v", fd, errno)
		}
		if flags&syscall.FD_CLOEXEC == 0 {
			t.Fatalf("descriptor %d is not close-on-exec", fd)
		}
	}
}
