// Failure modes of real endpoints, against llmtest (the real OpenAI wire
// protocol on 127.0.0.1, scripted replies) or a raw TCP listener that plays
// a hung server.
package llm_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

// hungServer accepts connections and reads requests but never answers, as
// an overloaded or wedged inference server does. It returns the base URL.
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				go func() { <-done; c.Close() }()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	})
	return "http://" + ln.Addr().String() + "/v1"
}

func TestHungEndpointFirstByteTimeout(t *testing.T) {
	url := hungServer(t)
	m := newModel(t, url, func(c *llm.OpenAIConfig) { c.FirstByteTimeout = 200 * time.Millisecond })
	start := time.Now()
	_, _, err := collect(t.Context(), m, ask)
	took := time.Since(start)
	e := llmError(t, err)
	if !errors.Is(err, llm.ErrTimeout) || errors.Is(err, llm.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q is not (only) llm.ErrTimeout, and context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), url+"/chat/completions") || !strings.Contains(err.Error(), "first-byte timeout of 200ms") {
		t.Errorf("error %q does not name the endpoint and the first-byte timeout", err)
	}
	// Not retried: a hung endpoint is reported within the first-byte
	// timeout, not four times it.
	if e.Attempts != 1 || took > 2*time.Second {
		t.Errorf("gave up after %d attempts and %v; want 1 attempt within about 200ms", e.Attempts, took)
	}
}

func TestFirstByteTimeoutDoesNotCutAStream(t *testing.T) {
	// Headers came in time: a slow stream is bounded by Timeout, not by the
	// first-byte timeout.
	s := llmtest.NewServer(t, llmtest.Reply{Text: "slow but steady", ChunkSize: 4, Delay: 50 * time.Millisecond})
	m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.FirstByteTimeout = time.Second })
	if _, final, err := collect(t.Context(), m, ask); err != nil || final.Message.Content != "slow but steady" {
		t.Fatalf("got %+v, %v", final, err)
	}
}

func TestPerCallTimeoutIsErrTimeout(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Text: "thinking", Hang: true})
	m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.Timeout = 150 * time.Millisecond })
	_, _, err := collect(t.Context(), m, ask)
	if !errors.Is(err, llm.ErrTimeout) || !strings.Contains(err.Error(), s.URL) || !strings.Contains(err.Error(), "model timeout of 150ms") {
		t.Errorf("error %q; want llm.ErrTimeout naming the endpoint and the timeout", err)
	}
}

func TestFailuresAreErrUnavailable(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Status: 400, Error: "bad schema"})
	_, _, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	if !errors.Is(err, llm.ErrUnavailable) || errors.Is(err, llm.ErrTimeout) {
		t.Errorf("a 400: %q; want llm.ErrUnavailable", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	_, _, err = collect(t.Context(), newModel(t, down, func(c *llm.OpenAIConfig) { c.MaxRetries = -1 }), ask)
	if !errors.Is(err, llm.ErrUnavailable) {
		t.Errorf("endpoint down: %q; want llm.ErrUnavailable", err)
	}
}

func TestNoStream(t *testing.T) {
	call := llm.ToolCall{ID: "call_1", Name: "gnss.position", Arguments: `{"fix":"rtk"}`}
	s := llmtest.NewServer(t, llmtest.Reply{Text: "Looking.", ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "gnss_position", Arguments: call.Arguments}}})
	m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.NoStream = true })
	req := &llm.Request{Messages: ask.Messages, Tools: []llm.ToolSpec{{Name: "gnss.position"}}}
	texts, final, err := collect(t.Context(), m, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Requests(); len(r) != 1 || r[0].Stream || r[0].IncludeUsage {
		t.Errorf("requests %+v; want one with stream: false and no stream_options", r)
	}
	if !equalCalls(final.Message.ToolCalls, []llm.ToolCall{call}) || final.FinishReason != "tool_calls" || final.Usage.TotalTokens == 0 {
		t.Errorf("final %+v; want the tool call under its own name, with usage", final)
	}
	if strings.Join(texts, "") != "Looking." {
		t.Errorf("text chunks %q; want the whole text as a chunk", texts)
	}
}

func TestStreamWithoutToolCallsFallsBack(t *testing.T) {
	// The hole: a server that cannot stream tool calls ends the stream
	// empty, and the turn got an empty reply with no error.
	call := llm.ToolCall{ID: "call_1", Name: "clock", Arguments: `{}`}
	s, err := llmtest.Start(llmtest.Config{StreamsNoToolCalls: true, Replies: []llmtest.Reply{
		{ToolCalls: []llm.ToolCall{call}},
		{Text: "It is noon."},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logs bytes.Buffer
	m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	req := &llm.Request{Messages: ask.Messages, Tools: []llm.ToolSpec{{Name: "clock"}}}
	_, final, err := collect(t.Context(), m, req)
	if err != nil {
		t.Fatal(err)
	}
	if !equalCalls(final.Message.ToolCalls, []llm.ToolCall{call}) {
		t.Fatalf("final %+v; want the tool call the stream left out", final)
	}
	if r := s.Requests(); len(r) != 2 || !r[0].Stream || r[1].Stream {
		t.Errorf("%d requests; want a streamed one, then the same without streaming", len(r))
	}
	if !strings.Contains(logs.String(), "level=INFO") || !strings.Contains(logs.String(), "asking again without streaming") {
		t.Errorf("the fallback is not logged at Info:\n%s", logs.String())
	}
	// The adapter learned: the next call goes unstreamed at once.
	req.Messages = append(req.Messages, final.Message, llm.Message{Role: llm.RoleTool, ToolCallID: "call_1", Content: `"12:00"`})
	texts, final, err := collect(t.Context(), m, req)
	if err != nil || final.Message.Content != "It is noon." || strings.Join(texts, "") != "It is noon." {
		t.Fatalf("second call: %+v, %q, %v", final, texts, err)
	}
	if r := s.Requests(); len(r) != 3 || r[2].Stream {
		t.Errorf("%d requests, last streamed=%v; want 3, the last without streaming", len(r), r[len(r)-1].Stream)
	}
	if !strings.Contains(logs.String(), "not streaming to it from now on") {
		t.Errorf("the switch to non-streamed requests is not logged:\n%s", logs.String())
	}
}

func TestEmptyReplyIsErrEmpty(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{}, llmtest.Reply{FinishReason: "length"})
	_, final, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	if !errors.Is(err, llm.ErrEmpty) || final != nil || !strings.Contains(err.Error(), `finish_reason "length"`) {
		t.Errorf("got %+v, %v; want llm.ErrEmpty and no final message", final, err)
	}
	if len(s.Requests()) != 2 {
		t.Errorf("%d requests; want the stream and one unstreamed try", len(s.Requests()))
	}
}

func TestEmptyAssistantMessagesNotSent(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Text: "ok"})
	req := &llm.Request{Messages: []llm.Message{
		{Role: llm.RoleUser, Content: "hi"},
		{Role: llm.RoleAssistant, Content: " \n"},
		{Role: llm.RoleUser, Content: "hello?"},
	}}
	if _, _, err := collect(t.Context(), newModel(t, s.URL, nil), req); err != nil {
		t.Fatal(err)
	}
	got := s.Requests()[0].Messages
	if len(got) != 2 || got[0].Content != "hi" || got[1].Content != "hello?" {
		t.Errorf("sent %+v; want the empty assistant message left out", got)
	}
	kept := llm.Compact([]llm.Message{
		{Role: llm.RoleAssistant},
		{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "a", Name: "clock"}}},
		{Role: llm.RoleTool, ToolCallID: "a"},
		{Role: llm.RoleAssistant, Content: "done"},
	})
	if len(kept) != 3 || kept[0].ToolCalls == nil || kept[2].Content != "done" {
		t.Errorf("Compact kept %+v", kept)
	}
}

func TestMissingV1Hint(t *testing.T) {
	s := llmtest.NewServer(t)
	root := strings.TrimSuffix(s.URL, "/v1")
	_, _, err := collect(t.Context(), newModel(t, root, nil), ask)
	if e := llmError(t, err); e.Status != 404 || !strings.Contains(e.Message, "did you mean "+root+"/v1?") {
		t.Errorf("error %q; want a 404 with the /v1 hint", err)
	}
	_, _, err = collect(t.Context(), newModel(t, s.URL+"/other", nil), ask)
	if e := llmError(t, err); e.Status != 404 || strings.Contains(e.Message, "did you mean") {
		t.Errorf("error %q; want a 404 without the hint (the URL has /v1)", err)
	}
}

// TestConnectionsPooled: 8 concurrent sessions on one adapter reuse their
// connections turn after turn (Go's default transport keeps 2 idle per
// host, so 6 new connections a round).
func TestConnectionsPooled(t *testing.T) {
	const sessions, rounds = 8, 5
	run := func(client *http.Client) int {
		s, err := llmtest.Start(llmtest.Config{Respond: func(llmtest.Request) llmtest.Reply {
			return llmtest.Reply{Text: "ok", Delay: 20 * time.Millisecond}
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.HTTPClient = client })
		for range rounds {
			var wg sync.WaitGroup
			for range sessions {
				wg.Go(func() {
					if _, _, err := collect(t.Context(), m, ask); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
		return s.Conns()
	}
	if n := run(nil); n > sessions {
		t.Errorf("the default transport opened %d connections for %d sessions × %d rounds; want at most %d", n, sessions, rounds, sessions)
	}
	// The test sees the difference: Go's default pool reconnects.
	if n := run(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}); n <= sessions {
		t.Logf("Go's default transport opened only %d connections (the sessions did not overlap)", n)
	}
}
