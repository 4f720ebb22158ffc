package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// depaiBin is the depai binary TestMain builds once; the tests run it as a
// user would.
var depaiBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "depai-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	depaiBin = filepath.Join(dir, "depai")
	build := exec.Command("go", "build", "-o", depaiBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building depai: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// depai runs the binary to completion with stdin and an environment whose
// home and state directories are private to the test.
func depai(t *testing.T, stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(depaiBin, args...)
	cmd.Env = testEnv(t, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("depai %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// testEnv is the environment without any DEPAI_ or XDG_ variable of the
// caller, with HOME in a temporary directory, plus extra.
func testEnv(t *testing.T, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEPAI_") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "HOME="+t.TempDir()), extra...)
}

// server is a `depai run` in the background.
type server struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

// startRun starts `depai run args...` and waits for its ready line.
func startRun(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(depaiBin, append([]string{"run"}, args...)...)
	cmd.Env = testEnv(t, env...)
	pr, pw := io.Pipe()
	s := &server{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(s.stderr, sc.Text())
			if !signalled && strings.Contains(sc.Text(), "msg=ready") {
				close(ready)
				signalled = true
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		s.done <- err
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case <-ready:
	case err := <-s.done:
		t.Fatalf("depai run exited before ready: %v\n%s", err, s.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("depai run not ready after 30s\n%s", s.stderr.String())
	}
	return s
}

// stop sends sig and waits for the process to exit; it returns the exit code.
func (s *server) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("depai run still running 10s after %v\n%s", sig, s.stderr.String())
	}
	// Reaped: no process with the PID is left behind.
	if err := syscall.Kill(s.cmd.Process.Pid, 0); err == nil {
		t.Errorf("process %d still exists after exit", s.cmd.Process.Pid)
	}
	return s.cmd.ProcessState.ExitCode()
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
