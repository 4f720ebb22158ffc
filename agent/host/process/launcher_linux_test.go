package process

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/depai/depai/agent/host/process/internal/launch"
)

// envLaunched makes the test binary the "plugin" a launcher execs: it
// reports what it was left with and exits.
const envLaunched = "DEPAI_PROCESS_TEST_LAUNCHED"

// reportLaunched prints, one per line: the descriptors above 2 it holds
// (but the runtime's poller), its RLIMIT_DATA, no_new_privs, whether it
// could read forbidden (Landlock), whether keyctl was refused (seccomp) and
// its capability bounding set. It opens no file before the descriptor
// check, which would add one of its own.
func reportLaunched(forbidden string) {
	var fds []string
	for fd := 3; fd < 64; fd++ {
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) != nil {
			continue
		}
		// The Go runtime's network poller is this process's own.
		if l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); l != "anon_inode:[eventpoll]" && l != "anon_inode:[eventfd]" {
			fds = append(fds, fmt.Sprintf("%d:%s", fd, l))
		}
	}
	var rl syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_DATA, &rl)
	nnp, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	_, readErr := os.ReadFile(forbidden)
	_, _, keyctl := syscall.Syscall(unix.SYS_KEYCTL, 0, 0, 0)
	fmt.Printf("fds [%s]\ndata %d\nnnp %d\nread %v\nkeyctl %v\ncapbnd %s\n",
		strings.Join(fds, " "), rl.Cur, nnp, readErr != nil, keyctl == syscall.EPERM, capBnd(nil))
}

// capBnd is this process's capability bounding set, as /proc shows it.
func capBnd(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil && t != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// TestLauncherConfines runs the test binary through each launcher — the
// embedded one from its memfd and the fallback re-execution of this binary —
// and checks what it was left with: no inherited descriptor but standard
// input, output and error (not the launcher's memfd, not the ruleset), its
// memory limit, no_new_privs, the Landlock ruleset the host built (a file
// outside it cannot be read) and the seccomp program (keyctl refused).
func TestLauncherConfines(t *testing.T) {
	k := New(Config{}).(*transport).kernel()
	if k.landlock < 1 || !k.seccomp {
		t.Skipf("this kernel cannot confine: %s", k.describe())
	}
	forbidden := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(forbidden, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	launchers := map[string]launcher{"self": {path: self, args: []string{launcherArg}}}
	if lr, _ := launcherFor(); lr.file != nil {
		launchers["embedded"] = lr
	}
	for name, lr := range launchers {
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			l := launchSpec{
				Path: self, Dir: work, DataLimit: 3 << 30, Landlock: k.landlock,
				Exec: []string{self}, ExecDirs: existing(systemExecDirs), RO: []string{"/proc"}, RW: []string{work},
				Seccomp: true,
				Env:     []string{envLaunched + "=" + forbidden},
			}
			cmd, release, err := lr.command(l)
			if err != nil {
				t.Fatal(err)
			}
			cmd.Dir = work
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			err = cmd.Run()
			release()
			if err != nil {
				t.Fatalf("launch: %v; stderr: %s", err, stderr.String())
			}
			bnd := "0000000000000000"
			if os.Geteuid() != 0 {
				bnd = capBnd(t) // only root can drop from it
			}
			want := fmt.Sprintf("fds []\ndata %d\nnnp 1\nread true\nkeyctl true\ncapbnd %s\n", uint64(3<<30), bnd)
			if out.String() != want {
				t.Fatalf("the launched plugin reports\n%s\nwant\n%s(stderr: %s)", out.String(), want, stderr.String())
			}
		})
	}
}

// TestLauncherIsEmbedded: where a launcher is built for the architecture,
// plugins start through it, not through the slow fallback.
func TestLauncherIsEmbedded(t *testing.T) {
	if len(embeddedLauncher) == 0 {
		t.Skipf("no launcher is built for %s", runtime.GOARCH)
	}
	if lr, _ := launcherFor(); lr.file == nil {
		t.Fatalf("the embedded launcher is not used: %v", launcherErr)
	}
}

// TestLauncherRefusesMalformedArguments: a launcher that cannot read what
// the host asked for execs nothing.
func TestLauncherRefusesMalformedArguments(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	good := launch.Args(launch.Spec{Path: "/bin/true", DataLimit: 1 << 30, LandlockFD: -1})
	for _, args := range [][]string{
		nil,
		{"v0"},
		append([]string{"v2"}, good[1:]...),
		slices.Replace(slices.Clone(good), 1, 2, "lots"),
		slices.Replace(slices.Clone(good), 2, 3, "-7"),
		slices.Replace(slices.Clone(good), 4, 5, "abc"),
		slices.Replace(slices.Clone(good), 5, 6, "true"),
	} {
		cmd := exec.Command(self, append([]string{launcherArg}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 126 || !strings.Contains(string(out), "malformed launch arguments") {
			t.Errorf("launcher %q = %v, %q; want exit 126 naming the malformed arguments", args, err, out)
		}
	}
}

// TestEmbeddedLauncherIsItsSource: the embedded launcher is what
// `go generate` builds from internal/launch and internal/launcher — the
// sources are the ones it was built from (bin/sources.sha256), and with the
// toolchain it was built with, a rebuild gives the same bytes.
func TestEmbeddedLauncherIsItsSource(t *testing.T) {
	if len(embeddedLauncher) == 0 {
		t.Skipf("no launcher is built for %s", runtime.GOARCH)
	}
	want, err := os.ReadFile("internal/launcher/bin/sources.sha256")
	if err != nil {
		t.Fatal(err)
	}
	if got := launcherSourcesHash(t); got != strings.TrimSpace(string(want)) {
		t.Fatalf("the launcher's sources changed since its binaries were built (sha256 %s, built from %s): run go generate ./agent/host/process", got, want)
	}
	if testing.Short() {
		t.Skip("the rebuild takes a few seconds")
	}
	bi, err := buildinfo.Read(bytes.NewReader(embeddedLauncher))
	if err != nil {
		t.Fatal(err)
	}
	gov, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	if v := strings.TrimSpace(string(gov)); v != bi.GoVersion {
		t.Skipf("the embedded launcher was built with %s, the go command is %s: not rebuilt", bi.GoVersion, v)
	}
	out := filepath.Join(t.TempDir(), "launcher")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, "./internal/launcher")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOEXPERIMENT=", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOAMD64=v1", "GOARM64=v8.0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, msg)
	}
	rebuilt, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rebuilt, embeddedLauncher) {
		t.Fatalf("the embedded launcher (%d bytes) is not a build of its source (%d bytes): run go generate ./agent/host/process", len(embeddedLauncher), len(rebuilt))
	}
}

// launcherSourcesHash hashes the launcher's Go sources (but tests), in
// byte order of their paths, as the go:generate line that writes
// bin/sources.sha256 does.
func launcherSourcesHash(t *testing.T) string {
	files, err := filepath.Glob("internal/launch*/*.go")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.go") })
	slices.Sort(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// BenchmarkLauncher is one confined start of /bin/true through each
// launcher (Landlock and seccomp as for a plugin with no grants), and the
// same program started bare: the launcher's own cost is the difference.
// "self" re-executes this test binary, which links far less than depai
// (whose re-execution, every package's init included, was the launcher
// before the embedded one).
func BenchmarkLauncher(b *testing.B) {
	k := New(Config{}).(*transport).kernel()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	embedded, _ := launcherFor()
	run := func(b *testing.B, start func() (*exec.Cmd, func(), error)) {
		for range b.N {
			cmd, release, err := start()
			if err != nil {
				b.Fatal(err)
			}
			out, err := cmd.CombinedOutput()
			release()
			if err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	}
	b.Run("bare", func(b *testing.B) {
		run(b, func() (*exec.Cmd, func(), error) { return exec.Command("/bin/true"), func() {}, nil })
	})
	for name, lr := range map[string]launcher{"embedded": embedded, "self": {path: self, args: []string{launcherArg}}} {
		if name == "embedded" && lr.file == nil {
			continue
		}
		b.Run(name, func(b *testing.B) {
			work := b.TempDir()
			l := launchSpec{Path: "/bin/true", Dir: work, DataLimit: 1 << 30, Landlock: k.landlock,
				Exec: []string{"/bin/true"}, ExecDirs: existing(systemExecDirs), RO: existing(systemRO), RW: []string{work},
				Seccomp: k.seccomp}
			run(b, func() (*exec.Cmd, func(), error) { return lr.command(l) })
		})
	}
}
