package process

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/sys/unix"

	"github.com/depai/depai/agent/host/process/internal/launch"
)

func init() {
	if len(os.Args) >= 2 && os.Args[1] == launcherArg {
		// The fallback launcher (see launcherFor). Never returns.
		launch.Main(os.Args[2:])
	}
}

// launcher is the program a plugin is started through: the embedded
// standard-library-only launcher, run from a sealed memfd, or — where none
// is built for this architecture or the memfd cannot be executed — this
// binary itself with launcherArg.
type launcher struct {
	path string   // what to exec, in the child
	args []string // before the launch arguments
	// file is the sealed memfd the child inherits as descriptor 3 and
	// execs as /proc/self/fd/3; nil for the fallback.
	file *os.File
}

var (
	launcherOnce sync.Once
	theLauncher  launcher
	launcherErr  error // why the embedded launcher is not used
	launcherNS   bool  // the launcher runs in a new PID namespace
)

// launcherFor returns the process-wide launcher, set up on first use: the
// embedded bytes are written to a memfd once and sealed, so no file on
// disk — where a plugin with a broad write grant could reach it — is ever
// run unconfined by the agent, and nothing is extracted per start. Its
// probe in a new PID namespace also answers whether plugins get one.
func launcherFor() (launcher, bool) {
	launcherOnce.Do(func() {
		l, err := memfdLauncher(embeddedLauncher)
		if err == nil {
			if launcherNS = l.probe(pidnsFlags()) == nil; !launcherNS {
				if perr := l.probe(0); perr != nil {
					err = fmt.Errorf("the launcher does not run from its memfd: %w", perr)
					l.file.Close()
				}
			}
		}
		if err != nil {
			launcherErr = err
			self, serr := os.Executable()
			if serr != nil {
				self = "/proc/self/exe"
			}
			l = launcher{path: self, args: []string{launcherArg}}
			launcherNS = l.probe(pidnsFlags()) == nil
		}
		theLauncher = l
	})
	return theLauncher, launcherNS
}

// launcherNote says why plugins start through the fallback launcher where
// an embedded one exists; "" when they do not.
func launcherNote() string {
	if lr, _ := launcherFor(); lr.file == nil && len(embeddedLauncher) > 0 {
		return launcherErr.Error()
	}
	return ""
}

// launcherFD is the descriptor the embedded launcher has in the child, and
// the first one ExtraFiles gives.
const launcherFD = 3

func memfdLauncher(bin []byte) (launcher, error) {
	if len(bin) == 0 {
		return launcher{}, errors.New("no launcher is built for this architecture")
	}
	fd, err := unix.MemfdCreate("depai-launcher", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // before Linux 6.3, which added MFD_EXEC
		fd, err = unix.MemfdCreate("depai-launcher", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return launcher{}, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "depai-launcher")
	if _, err := f.Write(bin); err != nil {
		f.Close()
		return launcher{}, fmt.Errorf("write the launcher: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		f.Close()
		return launcher{}, fmt.Errorf("seal the launcher: %w", err)
	}
	return launcher{path: fmt.Sprintf("/proc/self/fd/%d", launcherFD), file: f}, nil
}

// probe runs the launcher with launch.Probe, with the given clone flags,
// and reports whether it started and exited 0.
func (l launcher) probe(cloneflags uintptr) error {
	files := []uintptr{^uintptr(0), ^uintptr(0), ^uintptr(0)}
	if l.file != nil {
		files = append(files, l.file.Fd())
	}
	attr := &syscall.ProcAttr{Files: files, Sys: &syscall.SysProcAttr{Cloneflags: cloneflags}}
	if cloneflags&syscall.CLONE_NEWUSER != 0 {
		attr.Sys.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
		attr.Sys.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
	}
	argv := append(append([]string{l.path}, l.args...), launch.Probe)
	pid, err := syscall.ForkExec(l.path, argv, attr)
	if err != nil {
		return fmt.Errorf("start the launcher: %w", err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		return fmt.Errorf("wait for the launcher: %w", err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return fmt.Errorf("the launcher's probe ended with %v", ws)
	}
	return nil
}

// command is the launcher's command that starts plugin l; release
// closes the host's copies of what the child inherits.
func (lr launcher) command(l launchSpec) (cmd *exec.Cmd, release func(), err error) {
	s := launch.Spec{Path: l.Path, DataLimit: l.DataLimit, LandlockFD: -1}
	var extra []*os.File
	if lr.file != nil {
		extra = append(extra, lr.file)
	}
	var ruleset *os.File
	if l.Landlock > 0 {
		fd, flags, err := landlockRuleset(l)
		if err != nil {
			return nil, nil, fmt.Errorf("landlock: %w", err)
		}
		ruleset = os.NewFile(uintptr(fd), "landlock-ruleset")
		s.LandlockFD, s.LandlockFlags = launcherFD+len(extra), flags
		extra = append(extra, ruleset)
	}
	if l.Seccomp {
		if s.Seccomp, err = seccompProgram(l.UDP); err != nil {
			if ruleset != nil {
				ruleset.Close()
			}
			return nil, nil, fmt.Errorf("seccomp: %w", err)
		}
	}
	cmd = exec.Command(lr.path, append(append([]string(nil), lr.args...), launch.Args(s)...)...)
	cmd.Env = l.Env
	cmd.ExtraFiles = extra
	return cmd, func() {
		if ruleset != nil {
			ruleset.Close()
		}
	}, nil
}

var landlockABIs = []landlock.Config{landlock.V1, landlock.V1, landlock.V2, landlock.V3, landlock.V4, landlock.V5, landlock.V6}

// landlockRuleset builds the plugin's Landlock ruleset in the host; the
// launcher only restricts itself with it.
func landlockRuleset(s launchSpec) (int, uint32, error) {
	cfg := landlockABIs[min(s.Landlock, len(landlockABIs)-1)]
	var rules []landlock.Rule
	add := func(dirs, files func(...string) landlock.FSRule, paths []string) {
		for _, p := range paths {
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				continue // a granted path that does not exist grants nothing
			case fi.IsDir():
				rules = append(rules, dirs(p))
			default:
				rules = append(rules, files(p))
			}
		}
	}
	exec := func(paths ...string) landlock.FSRule {
		return landlock.PathAccess(landlock.AccessFSSet(unix.LANDLOCK_ACCESS_FS_EXECUTE|unix.LANDLOCK_ACCESS_FS_READ_FILE), paths...)
	}
	execDirs := func(paths ...string) landlock.FSRule {
		return landlock.PathAccess(landlock.AccessFSSet(unix.LANDLOCK_ACCESS_FS_EXECUTE|unix.LANDLOCK_ACCESS_FS_READ_FILE|unix.LANDLOCK_ACCESS_FS_READ_DIR), paths...)
	}
	add(execDirs, exec, s.ExecDirs)
	add(exec, exec, s.Exec)
	add(landlock.RODirs, landlock.ROFiles, s.RO)
	add(landlock.RWDirs, landlock.RWFiles, s.RW)
	if s.Landlock >= 4 {
		for _, p := range s.Ports {
			rules = append(rules, landlock.ConnectTCP(p))
		}
		for _, p := range s.Listen {
			rules = append(rules, landlock.BindTCP(p))
		}
	}
	return cfg.NewRulesetFD(rules...)
}

var (
	seccompOnce  [2]sync.Once
	seccompProgs [2][]byte
	seccompErrs  [2]error
)

// seccompProgram is seccompFilter(udp) assembled to raw BPF for the
// launcher, once per variant.
func seccompProgram(udp bool) ([]byte, error) {
	i := 0
	if udp {
		i = 1
	}
	seccompOnce[i].Do(func() {
		seccompProgs[i], seccompErrs[i] = assembleSeccomp(udp)
	})
	return seccompProgs[i], seccompErrs[i]
}

func assembleSeccomp(udp bool) ([]byte, error) {
	f := seccompFilter(udp)
	insts, err := f.Policy.Assemble()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 8*len(insts))
	for _, in := range insts {
		raw, err := in.Assemble()
		if err != nil {
			return nil, err
		}
		out = binary.NativeEndian.AppendUint16(out, raw.Op)
		out = append(out, raw.Jt, raw.Jf)
		out = binary.NativeEndian.AppendUint32(out, raw.K)
	}
	return out, nil
}

// launchCommand is the command that starts the plugin l through the
// launcher; release closes the host's copies of what the child inherits,
// once it started (or failed to).
func launchCommand(l launchSpec) (*exec.Cmd, func(), error) {
	lr, _ := launcherFor()
	return lr.command(l)
}
