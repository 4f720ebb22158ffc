package main

import (
	"context"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/policy"
)

// openTestFleet opens a real fleet (badger memory in a temp dir) from yaml.
func openTestFleet(t *testing.T, yaml string) *agent.Fleet {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := agent.Open(t.Context(), cfg, agent.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close(context.Background()) })
	return fleet
}

// serveFleet serves agents over the operator API with the admin token "t".
func serveFleet(t *testing.T, agents []operator.Agent) *operator.Client {
	t.Helper()
	srv, err := operator.NewServer(operator.Config{Addr: "127.0.0.1:0", Agents: agents,
		Operators: []operator.Operator{{Name: "operator", Role: policy.RoleAdmin, Token: "t"}}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return operator.NewClient(srv.Addr(), "t")
}

// timedBackend records when each turn's stream ended, around a real backend.
type timedBackend struct {
	backend
	mu    sync.Mutex
	ended map[string]time.Time // text → when its turn ended
}

func (b *timedBackend) send(ctx context.Context, name, text string) iter.Seq2[agent.Event, error] {
	return func(yield func(agent.Event, error) bool) {
		defer func() {
			b.mu.Lock()
			b.ended[text] = time.Now()
			b.mu.Unlock()
		}()
		for ev, err := range b.backend.send(ctx, name, text) {
			if !yield(ev, err) {
				return
			}
		}
	}
}

func (b *timedBackend) endedAt(text string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.ended[text]
	return at, ok
}

// TestScriptedStopDuringHungTurn: a script's /stop is sent as soon as it is
// read, not after the hung turn before it, for both chats: depai run --chat
// (the fleet in this process) and depai chat (over the operator API). The
// model is llmtest: the real wire protocol, a scripted reply that hangs.
func TestScriptedStopDuringHungTurn(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "remote"}[remote], func(t *testing.T) {
			model := llmtest.NewServer(t, llmtest.Reply{Text: "Once upon a time", Hang: true})
			fleet := openTestFleet(t, fmt.Sprintf("name: scout\nmodel: {base_url: %q, model: m}\n", model.URL))
			var b backend = localBackend{fleet}
			if remote {
				var agents []operator.Agent
				for _, a := range fleet.Agents() {
					agents = append(agents, a)
				}
				b = remoteBackend{serveFleet(t, agents)}
			}
			tb := &timedBackend{backend: b, ended: map[string]time.Time{}}
			in, script := io.Pipe()
			var out, errOut lockedBuffer
			done := make(chan error, 1)
			go func() { done <- chatSession(t.Context(), tb, in, &out, &errOut, sessionOptions{}) }()

			fmt.Fprintln(script, "tell me a story")
			waitRequests(t, model, 1)
			stopped := time.Now()
			fmt.Fprintln(script, "/stop")
			deadline := time.Now().Add(10 * time.Second)
			var ended time.Time
			for ok := false; !ok; ended, ok = tb.endedAt("tell me a story") {
				if time.Now().After(deadline) {
					t.Fatalf("the hung turn had not ended 10s after /stop\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
				}
				time.Sleep(time.Millisecond)
			}
			took := ended.Sub(stopped)
			t.Logf("/stop → hung turn ended: %v", took)
			// The model never answers, so only /stop can end the turn; the
			// bound is loose because CI shares two cores (the median is
			// 3–7 ms on a quiet machine: see the log line above).
			if took > 2*time.Second {
				t.Errorf("the hung turn ended %v after /stop; want within 2s", took)
			}
			fmt.Fprintln(script, "/resume")
			script.Close()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the chat did not end at the end of its script")
			}
			if !strings.Contains(out.String(), "EMERGENCY STOP engaged") || !strings.Contains(out.String(), "Emergency stop released") {
				t.Errorf("stdout lacks the /stop and /resume replies:\n%s", out.String())
			}
		})
	}
}

// failingAgent ends every turn with the agent's error event: the chat, the
// operator API and its client are real; the failure is the contract the
// core's turn keeps (agent.EventError with a code).
type failingAgent struct{}

func (failingAgent) Name() string         { return "scout" }
func (failingAgent) Status() agent.Status { return agent.Status{Name: "scout"} }
func (failingAgent) Handle(ctx context.Context, in agent.Input) iter.Seq2[agent.Event, error] {
	return func(yield func(agent.Event, error) bool) {
		if in.Text == "/status" {
			yield(agent.Event{Type: agent.EventReply, Text: "scout is idle"}, nil)
			return
		}
		if yield(agent.Event{Type: agent.EventDelta, Text: "Let me"}, nil) {
			yield(agent.Event{Type: agent.EventError, Code: agent.CodeModelTimeout, Error: "llm: http://127.0.0.1:1/v1/chat/completions: no response within the first-byte timeout of 15s"}, nil)
		}
	}
}

// TestScriptedChatFailsOnErrorEvent: the hole was scripted chat exiting 0
// on model failures. A turn that ends with an error event is printed as
// "error [code]: message" on stderr, and the script exits non-zero.
func TestScriptedChatFailsOnErrorEvent(t *testing.T) {
	c := serveFleet(t, []operator.Agent{failingAgent{}})
	var out, errOut lockedBuffer
	err := chatSession(t.Context(), remoteBackend{c}, strings.NewReader("where are you?\n/status\n"), &out, &errOut, sessionOptions{})
	if err == nil || err.Error() != "1 message(s) failed" {
		t.Errorf("chat = %v; want 1 message failed", err)
	}
	want := "error [model_timeout]: llm: http://127.0.0.1:1/v1/chat/completions: no response within the first-byte timeout of 15s\n"
	if errOut.String() != want {
		t.Errorf("stderr = %q, want %q", errOut.String(), want)
	}
	if out.String() != "Let me\nscout is idle\n" {
		t.Errorf("stdout = %q; want the partial reply ended, then the /status reply", out.String())
	}
}

// TestRunChatExitsNonZeroOnModelFailure: depai run --chat against a model
// that fails exits 1 with the error's code.
func TestRunChatExitsNonZeroOnModelFailure(t *testing.T) {
	model := llmtest.NewServer(t, llmtest.Reply{Status: 400, Error: "model 'm' not found"})
	file := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, "name: scout\nmodel: {base_url: %q, model: m}\n", model.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := depai(t, "hello\n", nil, "run", file, "--chat", "--data", t.TempDir(), "--log-level", "error")
	if code != 1 || !strings.Contains(stderr, "error [model_unavailable]: ") || !strings.Contains(stderr, "model 'm' not found") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and error [model_unavailable] with the endpoint's message", code, out, stderr)
	}
}

// Ctrl-C after a turn's reply is shown is the prompt's Ctrl-C: the turn
// goes on only to write its record, which it does not cancel. The chat
// said "cancelled the running turn" when Ctrl-C came while the record's
// fsync was slow (TestChatCtrlC in the clean-clone CI under load).
func TestCtrlCAfterTheReplyIsThePrompts(t *testing.T) {
	var out strings.Builder
	c := &chat{interactive: true, turns: map[int]*turn{}, out: &out, errOut: &out}
	cancelled := false
	answered := &turn{id: 1, cancel: func() { cancelled = true }}
	answered.answered.Store(true)
	c.turns[1] = answered
	c.interrupt()
	if cancelled || answered.cancelled.Load() || !strings.Contains(out.String(), "(Ctrl-C again within 2s, or Ctrl-D, quits)") {
		t.Errorf("Ctrl-C with only an answered turn: cancelled %v, said %q", cancelled, out.String())
	}
	out.Reset()
	c.lastInt = time.Time{}
	running := &turn{id: 2, cancel: func() {}}
	c.turns[2] = running
	c.interrupt()
	if !running.cancelled.Load() || !strings.Contains(out.String(), "cancelled the running turn") {
		t.Errorf("Ctrl-C with a turn still answering: cancelled %v, said %q", running.cancelled.Load(), out.String())
	}
}
