//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/depai/depai/agent/llm/llmtest"
)

// openPTY opens a pseudo-terminal pair of 40×120: what the test writes to
// master, the process reads from its terminal slave, and what the process
// writes there the test reads from master.
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
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
		t.Fatalf("window size: %v", err)
	}
	return m, s
}

// terminal is a depai process on a pseudo-terminal, as a person runs it:
// stdin and stdout are the terminal, the logs go to a buffer.
type terminal struct {
	t      *testing.T
	cmd    *exec.Cmd
	master *os.File
	screen lockedBuffer // everything the process wrote to the terminal
	logs   lockedBuffer
	done   chan error
}

func startTerminal(t *testing.T, args ...string) *terminal {
	t.Helper()
	master, slave := openPTY(t)
	term := &terminal{t: t, master: master, done: make(chan error, 1)}
	term.cmd = exec.Command(depaiBin, args...)
	term.cmd.Env = testEnv(t)
	term.cmd.Stdin, term.cmd.Stdout, term.cmd.Stderr = slave, slave, &term.logs
	// Its own session with the terminal as the controlling one, so that
	// Ctrl-C is the terminal's to deliver, as in a shell.
	term.cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go term.read()
	go func() { term.done <- term.cmd.Wait() }()
	t.Cleanup(func() {
		if term.cmd.ProcessState == nil {
			_ = term.cmd.Process.Kill()
			<-term.done
		}
	})
	return term
}

// read copies what the process writes to the screen, and answers the line
// editor's cursor position requests (ESC [6n) as a terminal does.
func (term *terminal) read() {
	buf := make([]byte, 4096)
	var tail []byte // the end of the last read, for a request split across reads
	for {
		n, err := term.master.Read(buf)
		if n > 0 {
			term.screen.Write(buf[:n])
			chunk := append(tail, buf[:n]...)
			for range strings.Count(string(chunk), "\x1b[6n") {
				_, _ = term.master.WriteString("\x1b[1;1R")
			}
			if i := strings.LastIndex(string(chunk), "\x1b[6n"); i >= 0 {
				chunk = chunk[i+4:]
			}
			tail = append([]byte(nil), chunk[max(0, len(chunk)-3):]...)
		}
		if err != nil {
			return
		}
	}
}

// waitFor waits until the screen shows want after offset from; it returns
// the offset after want.
func (term *terminal) waitFor(from int, want string) int {
	term.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := term.screen.String()
		if i := strings.Index(s[min(from, len(s)):], want); i >= 0 {
			return from + i + len(want)
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("no %q on the terminal after 20s:\n%s\nlogs:\n%s", want, s[min(from, len(s)):], term.logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (term *terminal) typeText(s string) {
	term.t.Helper()
	if _, err := term.master.WriteString(s); err != nil {
		term.t.Fatal(err)
	}
}

// exit waits for the process to end and returns its exit code.
func (term *terminal) exit() int {
	term.t.Helper()
	select {
	case <-term.done:
		return term.cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		term.t.Fatalf("still running after 20s\n%s", term.screen.String())
	}
	return -1
}

// TestRunChatInteractive drives --chat on a terminal: a banner naming the
// API's free port, a prompt naming the current agent, switching agents, the
// line editor's history (up arrow) kept in the data directory, and Ctrl-D
// to quit.
func TestRunChatInteractive(t *testing.T) {
	data := t.TempDir()
	term := startTerminal(t, "run", "testdata/fleet.yaml", "--chat", "--data", data)
	at := term.waitFor(0, "Chatting with scout (agents: scout, planner)")
	at = term.waitFor(at, "Operator API on http://127.0.0.1:")
	at = term.waitFor(at, "scout> ")
	term.typeText("/status\r")
	at = term.waitFor(at, "* scout")
	term.typeText("/agent planner\r")
	at = term.waitFor(at, "planner> ")
	term.typeText("\x1b[A\x1b[A\r") // up, up: /status again
	at = term.waitFor(at, "planner  digital")
	term.typeText("\x04") // Ctrl-D: end of input
	if code := term.exit(); code != 0 {
		t.Errorf("exit %d after Ctrl-D\n%s", code, term.screen.String())
	}
	if !strings.Contains(term.logs.String(), "only warnings and errors are logged") {
		t.Errorf("no notice that info logs pause while chatting:\n%s", term.logs.String())
	}
	hist, err := os.ReadFile(filepath.Join(data, "chat_history"))
	if err != nil || !strings.Contains(string(hist), "/agent planner") {
		t.Errorf("history file: %q, %v", hist, err)
	}
}

// hungFleet writes a fleet whose model (llmtest: the real wire protocol,
// scripted) streams a few words and then hangs until the client goes away.
func hungFleet(t *testing.T) (file string, model *llmtest.Server) {
	t.Helper()
	model = llmtest.NewServer(t, llmtest.Reply{Text: "Once upon a time", Hang: true}, llmtest.Reply{Text: "The end.", Hang: true})
	file = filepath.Join(t.TempDir(), "fleet.yaml")
	yaml := fmt.Sprintf("operator: {addr: \"127.0.0.1:0\"}\nagents:\n  - name: scout\n    model: {base_url: %q, model: m}\n", model.URL)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, model
}

// waitRequests waits until the model has received n requests.
func waitRequests(t *testing.T, model *llmtest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(model.Requests()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the model got %d requests after 20s, want %d", len(model.Requests()), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// turnEnded matches how a cancelled turn ends on the terminal: the core's
// error event ("error [estop]: …"), or the reply of a core without one.
var turnEnded = []string{"error [", "Turn cancelled"}

func (term *terminal) waitForAny(from int, wants []string) (int, string) {
	term.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := term.screen.String()
		for _, w := range wants {
			if i := strings.Index(s[min(from, len(s)):], w); i >= 0 {
				return from + i + len(w), w
			}
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("none of %q on the terminal after 20s:\n%s", wants, s[min(from, len(s)):])
		}
		time.Sleep(time.Millisecond)
	}
}

// TestChatStopDuringHungTurn: the hole was a /stop typed while a turn ran
// waiting until the turn ended (up to wall_time against a hung model). Now
// it is read while the turn runs and sent at once: the turn ends within
// 100 ms of the keystroke.
func TestChatStopDuringHungTurn(t *testing.T) {
	file, model := hungFleet(t)
	term := startTerminal(t, "run", file, "--chat", "--data", t.TempDir())
	at := term.waitFor(0, "scout> ")
	term.typeText("tell me a story\r")
	at = term.waitFor(at, "Once upo") // the first streamed chunk
	waitRequests(t, model, 1)
	start := time.Now()
	term.typeText("/stop\r")
	stopAt := at
	at, _ = term.waitForAny(at, turnEnded)
	took := time.Since(start)
	t.Logf("/stop typed → turn ended on the terminal: %v", took)
	if took > 100*time.Millisecond {
		t.Errorf("the turn ended %v after /stop; want within 100ms", took)
	}
	term.waitFor(stopAt, "EMERGENCY STOP engaged")
	term.typeText("/resume\r/quit\r")
	if code := term.exit(); code != 0 {
		t.Errorf("exit %d after /quit\n%s", code, term.screen.String())
	}
}

// TestChatCtrlC: Ctrl-C cancels the running turn and the chat goes on;
// Ctrl-C twice within 2 s quits. The hole was Ctrl-C shutting the whole
// fleet down.
func TestChatCtrlC(t *testing.T) {
	file, model := hungFleet(t)
	term := startTerminal(t, "run", file, "--chat", "--data", t.TempDir())
	at := term.waitFor(0, "scout> ")
	term.typeText("tell me a story\r")
	at = term.waitFor(at, "Once upo") // the first streamed chunk
	waitRequests(t, model, 1)
	term.typeText("\x03")
	at = term.waitFor(at, "(cancelled the running turn; Ctrl-C again within 2s quits)")
	time.Sleep(quitWithin + 100*time.Millisecond) // so the next Ctrl-C does not quit
	term.typeText("/status\r")
	at = term.waitFor(at, "* scout")
	term.typeText("\x03")
	at = term.waitFor(at, "(Ctrl-C again within 2s, or Ctrl-D, quits)")
	term.typeText("\x03")
	if code := term.exit(); code != 0 {
		t.Errorf("exit %d after Ctrl-C twice\n%s", code, term.screen.String())
	}
	if strings.Contains(term.logs.String(), "level=ERROR") {
		t.Errorf("errors while shutting down:\n%s", term.logs.String())
	}
}
