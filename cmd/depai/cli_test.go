package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/depai/depai/agent/config"
)

func TestVersion(t *testing.T) {
	out, stderr, code := depai(t, "", nil, "version")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`^depai \S+ commit \S+ go1\.\S+ \S+/\S+\n$`).MatchString(out) || !strings.Contains(out, runtime.Version()) {
		t.Errorf("depai version = %q", out)
	}
}

// TestRunChatScripted is the scripted chat: piped commands, each
// reply printed, exit 0 at end of input.
func TestRunChatScripted(t *testing.T) {
	data := t.TempDir()
	in := "/status\n/tools\n\n@planner /status\n@all /status\n/agent planner\n/status\n"
	out, stderr, code := depai(t, in, nil, "run", "testdata/fleet.yaml", "--chat", "--data", data, "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	// One status reply per /status, from the agent each line addressed (marked "*").
	statusRows := regexp.MustCompile(`(?m)^\* (scout|planner)\s+(robot|digital)\s+idle\s+none\b`).FindAllStringSubmatch(out, -1)
	var got []string
	for _, m := range statusRows {
		got = append(got, m[1])
	}
	if want := "scout planner scout planner planner"; strings.Join(got, " ") != want {
		t.Errorf("status rows for %q, want %q\n%s", strings.Join(got, " "), want, out)
	}
	if !strings.Contains(out, "TOOL") || !strings.Contains(out, "clock") {
		t.Errorf("no tool list in the output:\n%s", out)
	}
	if !strings.Contains(out, "[scout]\n") || !strings.Contains(out, "[planner]\n") {
		t.Errorf("@all replies are not headed by agent names:\n%s", out)
	}
	if strings.Contains(out, "> ") {
		t.Errorf("a prompt was printed though stdin is not a terminal:\n%s", out)
	}
}

func TestRunChatFirstAgent(t *testing.T) {
	out, stderr, code := depai(t, "/status\n", nil, "run", "testdata/fleet.yaml", "--chat", "--agent", "planner", "--data", t.TempDir())
	if code != 0 || !regexp.MustCompile(`(?m)^\* planner\s+digital`).MatchString(out) || strings.Contains(out, "* scout") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
}

func TestRunChatScriptedErrors(t *testing.T) {
	out, stderr, code := depai(t, "@nobody hi\n/agent ghost\n/status\n", nil, "run", "testdata/fleet.yaml", "--chat", "--data", t.TempDir())
	if code != 1 {
		t.Errorf("exit %d, want 1 (two lines failed)", code)
	}
	for _, want := range []string{`error: no agent "nobody"; agents: scout, planner`, `error: no agent "ghost"`, "depai: 2 message(s) failed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(out, "scout") {
		t.Errorf("the good line after the bad ones was not answered:\n%s", out)
	}
}

func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("agents:\n  - name: x\n    rol: robot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"run", filepath.Join(dir, "none.yaml")}, "none.yaml"},
		{"unknown key", []string{"run", bad, "--data", dir}, "rol"},
		{"no file", []string{"run"}, "accepts 1 arg"},
		{"non-loopback addr", []string{"run", "testdata/fleet.yaml", "--data", dir, "--addr", "0.0.0.0:0"}, "not a loopback address"},
		{"bad log level", []string{"run", "testdata/fleet.yaml", "--log-level", "loud"}, `--log-level "loud"`},
		{"unknown command", []string{"fly"}, `unknown command "fly"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := depai(t, "", nil, tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
			}
		})
	}
}

// TestRunServeChatStop: depai run in the background, depai chat against it
// (finding it through the data directory, through flags, through
// $DEPAI_TOKEN), then SIGINT: exit 0, the process gone, and the turns it ran
// still in memory on the next start.
func TestRunServeChatStop(t *testing.T) {
	data := t.TempDir()
	srv := startRun(t, nil, "testdata/fleet.yaml", "--data", data)

	tokenFile := filepath.Join(data, "operator.token")
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", fi.Mode().Perm())
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	log := srv.stderr.String()
	if !strings.Contains(log, tokenFile) {
		t.Errorf("the run log does not say where the token is:\n%s", log)
	}
	if strings.Contains(log, strings.TrimSpace(string(token))) {
		t.Errorf("the run log prints the token itself:\n%s", log)
	}
	var info runInfo
	b, err := os.ReadFile(filepath.Join(data, runInfoFile))
	if err != nil || json.Unmarshal(b, &info) != nil || info.PID != srv.cmd.Process.Pid {
		t.Fatalf("run info %s: %v", b, err)
	}

	t.Run("data dir", func(t *testing.T) {
		out, stderr, code := depai(t, "/status\n/call memory.put {\"text\":\"the blue crate at dock 4\"}\n", nil, "chat", "--data", data)
		if code != 0 || !regexp.MustCompile(`(?m)^\* scout\s+robot`).MatchString(out) {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	})
	t.Run("addr and token file", func(t *testing.T) {
		out, stderr, code := depai(t, "/status\n", nil, "chat", "--addr", info.Addr, "--token-file", tokenFile, "--agent", "planner")
		if code != 0 || !regexp.MustCompile(`(?m)^\* planner\s+digital`).MatchString(out) {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	})
	t.Run("DEPAI_TOKEN", func(t *testing.T) {
		out, stderr, code := depai(t, "/tools\n", []string{"DEPAI_TOKEN=" + string(token)}, "chat", "--addr", info.Addr)
		if code != 0 || !strings.Contains(out, "clock") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		_, stderr, code := depai(t, "/status\n", []string{"DEPAI_TOKEN=" + strings.Repeat("0", 64)}, "chat", "--addr", info.Addr)
		if code != 1 || !strings.Contains(stderr, "wrong bearer token") {
			t.Errorf("exit %d, stderr %q; want 1 and the 401 message", code, stderr)
		}
	})
	t.Run("unknown agent", func(t *testing.T) {
		_, stderr, code := depai(t, "", nil, "chat", "--data", data, "--agent", "ghost")
		if code != 1 || !strings.Contains(stderr, `--agent "ghost": no such agent; agents: scout, planner`) {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	if code := srv.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0\n%s", code, srv.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(data, runInfoFile)); !os.IsNotExist(err) {
		t.Errorf("run info left behind after shutdown: %v", err)
	}
	_, stderr, code := depai(t, "/status\n", nil, "chat", "--data", data)
	if code != 1 || !strings.Contains(stderr, "is depai run running there?") {
		t.Errorf("chat with no depai run: exit %d, stderr %q", code, stderr)
	}

	// The next run reuses the token and remembers the turn.
	out, stderr, code := depai(t, "/memory search blue crate\n", nil, "run", "testdata/fleet.yaml", "--chat", "--data", data)
	if code != 0 || !strings.Contains(out, "blue crate at dock 4") {
		t.Errorf("after restart, memory search: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	again, err := os.ReadFile(tokenFile)
	if err != nil || string(again) != string(token) {
		t.Errorf("token changed across runs (%v)", err)
	}
}

func TestRunSIGTERM(t *testing.T) {
	srv := startRun(t, nil, "testdata/fleet.yaml", "--data", t.TempDir())
	if code := srv.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0\n%s", code, srv.stderr.String())
	}
}

// TestDefaultDataDir: with no flags, a fresh machine's state directory is
// used and created.
func TestDefaultDataDir(t *testing.T) {
	state := t.TempDir()
	_, stderr, code := depai(t, "/status\n", []string{"XDG_STATE_HOME=" + state}, "run", "testdata/fleet.yaml", "--chat")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "depai", "operator.token")); err != nil {
		t.Errorf("no token in $XDG_STATE_HOME/depai: %v", err)
	}
	env := []string{"DEPAI_DATA=" + filepath.Join(state, "env")}
	if _, stderr, code := depai(t, "/status\n", env, "run", "testdata/fleet.yaml", "--chat"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "env", "operator.token")); err != nil {
		t.Errorf("$DEPAI_DATA not used: %v", err)
	}
}

func TestLowMemLimit(t *testing.T) {
	lean := &config.File{Agents: []config.Agent{{Name: "a"}, {Name: "b", Memory: config.Memory{Profile: config.ProfileLowMem}}}}
	plain := &config.File{Agents: []config.Agent{{Name: "a", Memory: config.Memory{Profile: config.ProfileDefault}}}}
	t.Setenv("GOMEMLIMIT", "")
	if n, ok := lowMemLimit(lean); !ok || n != lowMemRuntimeLimit {
		t.Errorf("lowmem fleet: %d, %v", n, ok)
	}
	if _, ok := lowMemLimit(plain); ok {
		t.Error("default profile set a limit")
	}
	t.Setenv("GOMEMLIMIT", "200MiB")
	if _, ok := lowMemLimit(lean); ok {
		t.Error("an explicit GOMEMLIMIT was overridden")
	}
}
