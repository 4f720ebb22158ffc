package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"
)

// cmdRunner starts and reaps one plugin process for go-plugin. We run it
// ourselves, not through go-plugin's runner, to set Pdeathsig and an rlimit,
// keep the agent's stdin away from the plugin, and learn the moment the
// process exits — go-plugin does not supervise and has no exit callback.
type cmdRunner struct {
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
	memLimit       uint64

	pid     int
	killed  atomic.Bool   // the host killed it
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // how it exited; read after exited is closed
}

var _ runner.Runner = (*cmdRunner)(nil)

func newCmdRunner(path string, env []string, memLimit uint64) (*cmdRunner, error) {
	cmd := exec.Command(path)
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &cmdRunner{cmd: cmd, stdout: stdout, stderr: stderr, memLimit: memLimit, exited: make(chan struct{})}, nil
}

func (r *cmdRunner) Start(context.Context) error {
	if err := spawn(r.cmd); err != nil {
		return err
	}
	r.pid = r.cmd.Process.Pid
	if r.memLimit > 0 {
		if err := limitMemory(r.pid, r.memLimit); err != nil {
			_ = r.cmd.Process.Kill()
			return fmt.Errorf("set memory limit: %w", err)
		}
	}
	return nil
}

func (r *cmdRunner) Wait(context.Context) error {
	r.waitErr = r.cmd.Wait()
	close(r.exited)
	return r.waitErr
}

// killedByHost reports whether the process died of the host's SIGKILL
// rather than of its own accord; valid after exited is closed.
func (r *cmdRunner) killedByHost() bool {
	var ee *exec.ExitError
	if !r.killed.Load() || !errors.As(r.waitErr, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func (r *cmdRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	r.killed.Store(true)
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *cmdRunner) Diagnose(context.Context) string {
	return "the file is not a depai process plugin (built with sdk.Main for this OS and architecture), or it wrote to stdout before serving"
}

func (r *cmdRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *cmdRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *cmdRunner) Name() string          { return r.cmd.Path }
func (r *cmdRunner) ID() string            { return strconv.Itoa(r.pid) }

func (r *cmdRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *cmdRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// runnerFunc adapts newCmdRunner to go-plugin, which hands us the
// environment (handshake cookie, socket dir) on a template command.
func runnerFunc(path string, memLimit uint64, started func(*cmdRunner)) func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error) {
	return func(_ hclog.Logger, tmpl *exec.Cmd, _ string) (runner.Runner, error) {
		r, err := newCmdRunner(path, tmpl.Env, memLimit)
		if err != nil {
			return nil, err
		}
		started(r)
		return r, nil
	}
}

// Pdeathsig fires when the *thread* that forked the child exits, not the
// process, and the Go runtime does end threads (a goroutine that exits while
// locked to its thread takes the thread with it). So every plugin is forked
// from one goroutine locked to a thread that never exits.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for req := range spawnReqs {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}
