package process

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/depai/depai/agent/host"
)

// cmdRunner starts and reaps one plugin process for go-plugin. We run it
// ourselves, not through go-plugin's runner, to start it through the
// confining launcher (see launchSpec) in its own process group or PID
// namespace with a parent-death signal, keep the agent's stdin and
// environment away from it, and learn the moment it exits — go-plugin does
// not supervise and has no exit callback.
type cmdRunner struct {
	cmd            *exec.Cmd
	release        func() // closes the host's copies of what the child inherits
	stdout, stderr io.ReadCloser

	pid     int
	killed  atomic.Bool   // the host killed it
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // how it exited; read after exited is closed
}

var _ runner.Runner = (*cmdRunner)(nil)

func newCmdRunner(l launchSpec, pidns bool) (*cmdRunner, error) {
	cmd, release, err := launchCommand(l)
	if err != nil {
		return nil, err
	}
	cmd.Dir = l.Dir
	cmd.SysProcAttr = sysProcAttr(pidns)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		release()
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		release()
		return nil, err
	}
	return &cmdRunner{cmd: cmd, release: release, stdout: stdout, stderr: stderr, exited: make(chan struct{})}, nil
}

func (r *cmdRunner) Start(context.Context) error {
	err := spawn(r.cmd)
	r.release()
	if err != nil {
		return err
	}
	r.pid = r.cmd.Process.Pid
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
	killGroup(r.pid)
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
// handshake environment on a template command and a private socket
// directory, which becomes the plugin's working directory.
func (in *instance) runnerFunc(started func(*cmdRunner)) func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error) {
	return func(_ hclog.Logger, tmpl *exec.Cmd, socketDir string) (runner.Runner, error) {
		l, c, err := in.t.plan(in.spec, socketDir, tmpl.Env)
		if err != nil {
			return nil, err
		}
		r, err := newCmdRunner(l, !slices.Contains(c.Missing, host.FeaturePIDNS))
		if err != nil {
			return nil, err
		}
		in.mu.Lock()
		in.confinement = c
		in.mu.Unlock()
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
