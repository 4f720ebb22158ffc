//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what the test writes to master, the
// process reads from its terminal slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestRunChatInteractive drives --chat on a terminal: a banner, a prompt
// naming the current agent, switching agents, and Ctrl-D to quit.
func TestRunChatInteractive(t *testing.T) {
	master, slave := openPTY(t)
	cmd := exec.Command(depaiBin, "run", "testdata/fleet.yaml", "--chat", "--data", t.TempDir())
	cmd.Env = testEnv(t)
	cmd.Stdin = slave
	var logs, out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	// The terminal echoes what the test types; drain it.
	go func() {
		sc := bufio.NewScanner(master)
		for sc.Scan() {
		}
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the output after 20s:\n%s", want, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	typeLine := func(s string) {
		t.Helper()
		if _, err := master.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}

	waitFor("Chatting with scout (agents: scout, planner)")
	waitFor("scout> ")
	typeLine("/status\n")
	waitFor("* scout")
	typeLine("/agent planner\n")
	waitFor("planner> ")
	typeLine("/status\n")
	waitFor("planner  digital")
	typeLine("\x04") // Ctrl-D: end of input
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after Ctrl-D: %v\n%s", err, out.String())
		}
		if !strings.Contains(logs.String(), "only warnings and errors are logged") {
			t.Errorf("no notice that info logs pause while chatting:\n%s", logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after Ctrl-D\n%s", out.String())
	}
}
