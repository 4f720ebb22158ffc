package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

// TestRunWithModel runs a fleet whose model is llmtest (the real OpenAI
// wire protocol on loopback, with scripted answers): a turn that calls a
// tool and answers, streamed through depai run's operator API to depai chat;
// then a turn still streaming when depai run gets SIGINT, which exits 0 and
// keeps the turn in memory.
func TestRunWithModel(t *testing.T) {
	model := llmtest.NewServer(t,
		llmtest.Reply{ToolCalls: []llm.ToolCall{{Name: "clock", Arguments: `{}`}}},
		llmtest.Reply{Text: "It is noon at the dock, and the crate is still there.", ChunkSize: 6},
		llmtest.Reply{Text: "Once upon a time", Hang: true},
	)
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.yaml")
	yaml := fmt.Sprintf(`agents:
  - name: scout
    role: robot
    model:
      base_url: %s
      model: scripted
    memory: {read: [agent/scout], write: [agent/scout]}
`, model.URL)
	if err := os.WriteFile(fleet, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	srv := startRun(t, nil, fleet, "--data", data, "--addr", "127.0.0.1:0")

	out, stderr, code := depai(t, "what time is it?\n", nil, "chat", "--data", data)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	if out != "It is noon at the dock, and the crate is still there.\n" {
		t.Errorf("stdout = %q, want the reply once, streamed or not", out)
	}
	if !strings.Contains(stderr, "→ clock {}") || !strings.Contains(stderr, "← clock {") {
		t.Errorf("the tool call is not traced on stderr:\n%s", stderr)
	}

	// A turn that hangs mid-reply, cut short by SIGINT to depai run.
	chat := exec.Command(depaiBin, "chat", "--data", data)
	chat.Env = testEnv(t)
	chat.Stdin = strings.NewReader("tell me a story\n")
	var chatOut, chatErr strings.Builder
	chat.Stdout, chat.Stderr = &chatOut, &chatErr
	if err := chat.Start(); err != nil {
		t.Fatal(err)
	}
	chatDone := make(chan error, 1)
	go func() { chatDone <- chat.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for len(model.Requests()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the story turn never reached the model\n%s", srv.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := srv.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT mid-turn, want 0\n%s", code, srv.stderr.String())
	}
	select {
	case err := <-chatDone:
		// The cut-short turn is an error, and a scripted chat says so in
		// its exit status.
		if err == nil || !strings.Contains(chatErr.String(), "[cancelled]") {
			t.Errorf("chat during shutdown: %v, stderr %q; want exit 1 and the turn's cancelled error", err, chatErr.String())
		}
	case <-time.After(20 * time.Second):
		_ = chat.Process.Kill()
		t.Fatal("depai chat still running 20s after depai run stopped")
	}

	out, stderr, code = depai(t, "/memory search story\n", nil, "run", fleet, "--chat", "--data", data, "--addr", "127.0.0.1:0")
	if code != 0 || !strings.Contains(out, "tell me a story") {
		t.Errorf("after restart, the cut-short turn is not in memory: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
}
