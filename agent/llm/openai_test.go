// The tests run the adapter against llmtest, a real HTTP server speaking the
// OpenAI wire format on 127.0.0.1: the protocol is real, the replies are
// scripted.
package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func newModel(t testing.TB, url string, mod func(*llm.OpenAIConfig)) *llm.OpenAI {
	t.Helper()
	cfg := llm.OpenAIConfig{BaseURL: url, Model: "test-model", Backoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	m, err := llm.NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var ask = &llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "where is rover 1?"}}}

// collect runs Generate to the end.
func collect(ctx context.Context, m llm.Model, req *llm.Request) (texts []string, final *llm.Response, err error) {
	for c, err := range m.Generate(ctx, req) {
		if err != nil {
			return texts, final, err
		}
		if c.Final != nil {
			final = c.Final
			continue
		}
		texts = append(texts, c.Text)
	}
	return texts, final, nil
}

func llmError(t *testing.T, err error) *llm.Error {
	t.Helper()
	var e *llm.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *llm.Error", err, err)
	}
	return e
}

func TestStreamText(t *testing.T) {
	const text = "Rover 1 is at the north gate, battery 82 %. Ünïcode survives chunking."
	usage := &llm.Usage{PromptTokens: 11, CompletionTokens: 17, TotalTokens: 28}
	s := llmtest.NewServer(t, llmtest.Reply{Text: text, ChunkSize: 5, Usage: usage})
	texts, final, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) < 10 || strings.Join(texts, "") != text {
		t.Errorf("streamed %d chunks %q; want the text in many chunks", len(texts), texts)
	}
	if final == nil || final.Message.Content != text || final.Message.Role != llm.RoleAssistant || final.FinishReason != "stop" || final.Usage != *usage {
		t.Errorf("final = %+v", final)
	}
	req := s.Requests()[0]
	if !req.Stream || !req.IncludeUsage || req.Model != "test-model" {
		t.Errorf("request stream=%v include_usage=%v model=%q; want a streamed request asking for usage", req.Stream, req.IncludeUsage, req.Model)
	}
}

func TestToolCallSplitAcrossChunks(t *testing.T) {
	args := `{"rover":"rover-1","waypoints":[{"lat":52.52,"lon":13.405},{"lat":52.53,"lon":13.41}],"speed":0.8}`
	s := llmtest.NewServer(t, llmtest.Reply{
		Text:      "Sending it.",
		ToolCalls: []llm.ToolCall{{ID: "call_abc", Name: "drive", Arguments: args}},
		ChunkSize: 3,
	})
	texts, final, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	if err != nil {
		t.Fatal(err)
	}
	want := []llm.ToolCall{{ID: "call_abc", Name: "drive", Arguments: args}}
	if final == nil || final.FinishReason != "tool_calls" || !equalCalls(final.Message.ToolCalls, want) {
		t.Fatalf("final = %+v; want tool calls %+v", final, want)
	}
	if strings.Join(texts, "") != "Sending it." {
		t.Errorf("text %q", texts)
	}
}

func TestParallelToolCallsInterleaved(t *testing.T) {
	want := []llm.ToolCall{
		{ID: "a", Name: "gnss.position", Arguments: `{"rover":"rover-1"}`},
		{ID: "b", Name: "gnss.position", Arguments: `{"rover":"rover-2"}`},
		{ID: "c", Name: "weather.now", Arguments: `{"site":"north gate","units":"metric"}`},
	}
	s := llmtest.NewServer(t, llmtest.Reply{ToolCalls: want, ChunkSize: 4, Interleave: true})
	_, final, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	if err != nil {
		t.Fatal(err)
	}
	if !equalCalls(final.Message.ToolCalls, want) || final.Message.Content != "" {
		t.Errorf("tool calls %+v; want %+v", final.Message.ToolCalls, want)
	}
}

func equalCalls(a, b []llm.ToolCall) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestToolNamesMappedForTheAPI(t *testing.T) {
	// OpenAI accepts tool names matching ^[a-zA-Z0-9_-]{1,64}$ only; depai's
	// names have dots. The model sees and calls the wire names; the caller
	// gets its own names back.
	var wireNames []string
	s, err := llmtest.Start(llmtest.Config{Respond: func(r llmtest.Request) llmtest.Reply {
		var calls []llm.ToolCall
		for i, tool := range r.Tools {
			wireNames = append(wireNames, tool.Name)
			calls = append(calls, llm.ToolCall{ID: fmt.Sprint(i), Name: tool.Name, Arguments: "{}"})
		}
		return llmtest.Reply{ToolCalls: calls}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req := &llm.Request{Messages: ask.Messages, Tools: []llm.ToolSpec{{Name: "gnss.position"}, {Name: "gnss_position"}, {Name: "clock"}}}
	_, final, err := collect(t.Context(), newModel(t, s.URL, nil), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"gnss_position_2", "gnss_position", "clock"}; !slices.Equal(wireNames, want) {
		t.Errorf("wire names %q; want %q", wireNames, want)
	}
	var got []string
	for _, c := range final.Message.ToolCalls {
		got = append(got, c.Name)
	}
	if want := []string{"gnss.position", "gnss_position", "clock"}; !slices.Equal(got, want) {
		t.Errorf("calls %q; want %q", got, want)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	s := llmtest.NewServer(t,
		llmtest.Reply{Status: 429, Error: "Rate limit reached"},
		llmtest.Reply{Status: 500, Error: "upstream exploded"},
		llmtest.Reply{Status: 503},
		llmtest.Reply{Text: "ok"},
	)
	_, final, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	if err != nil {
		t.Fatal(err)
	}
	if final.Message.Content != "ok" || len(s.Requests()) != 4 {
		t.Errorf("got %q after %d requests; want ok after 4", final.Message.Content, len(s.Requests()))
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Status: 429, RetryAfter: time.Second}, llmtest.Reply{Text: "ok"})
	// Backoff alone would retry within a millisecond; only Retry-After
	// makes the adapter wait, and MaxBackoff must allow it.
	m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.MaxBackoff = 5 * time.Second })
	start := time.Now()
	_, final, err := collect(t.Context(), m, ask)
	if err != nil || final.Message.Content != "ok" {
		t.Fatalf("got %+v, %v", final, err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("retried after %v; the endpoint asked for 1s", waited)
	}
}

func TestRetryAfterBeyondMaxBackoffGivesUp(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Status: 429, Error: "Rate limit reached", RetryAfter: time.Hour}, llmtest.Reply{Text: "never"})
	_, _, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	e := llmError(t, err)
	if e.Status != 429 || !e.Retryable || !strings.Contains(e.Error(), "retry after 1h0m0s") || s.Remaining() != 1 {
		t.Errorf("error %q (%+v), %d replies left; want a 429 naming the Retry-After, without retrying", e, e, s.Remaining())
	}
}

func TestGiveUp(t *testing.T) {
	var replies []llmtest.Reply
	for range 5 {
		replies = append(replies, llmtest.Reply{Status: 500, Error: "model crashed"})
	}
	s := llmtest.NewServer(t, replies...)
	_, _, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	e := llmError(t, err)
	want := "llm: " + s.URL + "/chat/completions: HTTP 500: model crashed (gave up after 4 attempts)"
	if e.Error() != want || !e.Retryable || e.Attempts != 4 || len(s.Requests()) != 4 {
		t.Errorf("error %q after %d requests; want %q after 4", e, len(s.Requests()), want)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Status: 400, Error: "Invalid schema for function 'drive'"}, llmtest.Reply{Text: "never"})
	_, _, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	e := llmError(t, err)
	if e.Status != 400 || e.Retryable || e.Message != "Invalid schema for function 'drive'" || len(s.Requests()) != 1 {
		t.Errorf("error %+v after %d requests; want the 400 with its message, once", e, len(s.Requests()))
	}
}

func TestAPIKey(t *testing.T) {
	s, err := llmtest.Start(llmtest.Config{APIKey: "sk-test", Replies: []llmtest.Reply{{Text: "ok"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, err = collect(t.Context(), newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.APIKey = "wrong" }), ask)
	if e := llmError(t, err); e.Status != 401 || e.Retryable {
		t.Errorf("wrong key: %+v; want a 401, not retried", e)
	}
	if _, _, err := collect(t.Context(), newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.APIKey = "sk-test" }), ask); err != nil {
		t.Errorf("right key: %v", err)
	}
}

func TestBadStreams(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"garbage json", "data: {\"id\": nonsense\n\n", "invalid stream"},
		{"not sse", "<html><body>It works!</body></html>\n", "sent no chat completion chunks"},
		{"error event", `data: {"error":{"message":"model overloaded","type":"server_error"}}` + "\n\n", "model overloaded"},
		{"error object instead of a stream", `{"error":{"message":"quota exceeded","type":"insufficient_quota"}}` + "\n", "quota exceeded"},
		{"bad tool index", `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":99999,"function":{"name":"x"}}]}}]}` + "\n\n", "tool call index 99999"},
		// One decoder reads every chunk of a stream: a line holding more than
		// one JSON value, or an empty one, is refused as json.Unmarshal would.
		{"two values on a line", `data: {"choices":[]} {"choices":[]}` + "\n\n", "data after the JSON value"},
		{"empty data line", "data: \n\n", "invalid stream chunk"},
		{"json cut short on its line", "data: {\"choices\":[\n\n", "invalid stream chunk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := llmtest.NewServer(t, llmtest.Reply{Raw: tc.raw}, llmtest.Reply{Text: "never"})
			_, _, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
			if e := llmError(t, err); !strings.Contains(e.Error(), tc.want) || e.Retryable || s.Remaining() != 1 {
				t.Errorf("error %q retryable=%v, %d replies left; want %q, not retried", e, e.Retryable, s.Remaining(), tc.want)
			}
		})
	}
}

func TestTruncatedStream(t *testing.T) {
	call := []llm.ToolCall{{ID: "x", Name: "clock", Arguments: `{}`}}
	// Nothing reached the caller yet (tool calls are delivered whole), so a
	// cut stream is retried.
	s := llmtest.NewServer(t, llmtest.Reply{ToolCalls: call, Truncate: true}, llmtest.Reply{ToolCalls: call})
	_, final, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	if err != nil || !equalCalls(final.Message.ToolCalls, call) {
		t.Fatalf("got %+v, %v; want the retried reply", final, err)
	}
	// Text was delivered: no retry, a clear error.
	s = llmtest.NewServer(t, llmtest.Reply{Text: "half a sent", Truncate: true}, llmtest.Reply{Text: "never"})
	texts, _, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	e := llmError(t, err)
	if !strings.Contains(e.Message, "stream ended before the reply was complete") || strings.Join(texts, "") != "half a sent" || s.Remaining() != 1 {
		t.Errorf("error %q after text %q, %d replies left; want a truncation error and no retry", e, texts, s.Remaining())
	}
}

func TestCancelMidStream(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Text: "thinking…", Hang: true})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var texts []string
	var err error
	for c, e := range newModel(t, s.URL, nil).Generate(ctx, ask) {
		if e != nil {
			err = e
			break
		}
		texts = append(texts, c.Text)
		cancel()
	}
	if !errors.Is(err, context.Canceled) || len(texts) == 0 || len(s.Requests()) != 1 {
		t.Errorf("after cancel: %v, texts %q, %d requests; want context.Canceled and no retry", err, texts, len(s.Requests()))
	}
}

func TestModelTimeout(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Hang: true})
	m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.Timeout = 100 * time.Millisecond; c.MaxRetries = -1 })
	_, _, err := collect(t.Context(), m, ask)
	if e := llmError(t, err); !strings.Contains(e.Message, "model timeout of 100ms") {
		t.Errorf("error %q; want the model timeout", e)
	}
}

func TestStopEarly(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Text: "a long answer that the caller stops reading", ChunkSize: 2})
	n := 0
	for range newModel(t, s.URL, nil).Generate(t.Context(), ask) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("got %d chunks; want to stop after 1", n)
	}
}

func TestEndpointDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	_, _, err = collect(t.Context(), newModel(t, url, func(c *llm.OpenAIConfig) { c.MaxRetries = 2 }), ask)
	e := llmError(t, err)
	if e.Status != 0 || !e.Retryable || e.Attempts != 3 || !strings.Contains(e.Error(), "connection refused") || !strings.Contains(e.Error(), url) {
		t.Errorf("endpoint down: %q (%+v); want connection refused naming the URL after 3 attempts", e, e)
	}
}

func TestNewOpenAIBadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x/v1", "http://"} {
		if _, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: u}); err == nil || !strings.Contains(err.Error(), "invalid base URL") {
			t.Errorf("NewOpenAI(%q) = %v; want an invalid base URL error", u, err)
		}
	}
}

func TestRequestDefaults(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Text: "a"}, llmtest.Reply{Text: "b"})
	zero, half := float32(0), float32(0.5)
	m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.MaxTokens = 256; c.Temperature = &zero })
	if _, _, err := collect(t.Context(), m, ask); err != nil {
		t.Fatal(err)
	}
	if _, _, err := collect(t.Context(), m, &llm.Request{Messages: ask.Messages, MaxTokens: 64, Temperature: &half}); err != nil {
		t.Fatal(err)
	}
	r := s.Requests()
	if r[0].MaxTokens != 256 || r[0].Temperature == nil || *r[0].Temperature > 1e-30 {
		t.Errorf("config defaults: max_tokens %d temperature %v; want 256 and (nearly) 0", r[0].MaxTokens, r[0].Temperature)
	}
	if r[1].MaxTokens != 64 || r[1].Temperature == nil || *r[1].Temperature != 0.5 {
		t.Errorf("request values: max_tokens %d temperature %v; want 64 and 0.5", r[1].MaxTokens, r[1].Temperature)
	}
}

// TestGoldenRequest pins the exact JSON the adapter sends: a whole tool
// round trip and a tool schema. Run with -update to rewrite the golden file.
func TestGoldenRequest(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Text: "done"})
	req := &llm.Request{
		Messages: []llm.Message{
			{Role: llm.RoleSystem, Content: "You are scout, a survey rover."},
			{Role: llm.RoleUser, Content: "Where are you?"},
			{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "gnss.position", Arguments: `{"fix":"rtk"}`}}},
			{Role: llm.RoleTool, ToolCallID: "call_1", Content: `{"lat":52.52,"lon":13.405}`},
		},
		Tools: []llm.ToolSpec{
			{
				Name:        "gnss.position",
				Description: "The rover's latest position fix.",
				Parameters:  json.RawMessage(`{"type":"object","properties":{"fix":{"type":"string","enum":["any","rtk"]}},"required":["fix"],"additionalProperties":false}`),
			},
			{Name: "clock", Description: "The current time."},
		},
		MaxTokens: 128,
	}
	if _, _, err := collect(t.Context(), newModel(t, s.URL, nil), req); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := json.Indent(&got, s.Requests()[0].Body, "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteByte('\n')
	const golden = "testdata/request.golden"
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("request body differs from %s:\n%s", golden, got.Bytes())
	}
}

// A data line longer than the reader's buffer (a long reply in one chunk)
// arrives whole.
func TestLongStreamLine(t *testing.T) {
	long := strings.Repeat("0123456789", 2000)
	raw := `data: {"choices":[{"index":0,"delta":{"content":"` + long + `"},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"
	s := llmtest.NewServer(t, llmtest.Reply{Raw: raw})
	texts, final, err := collect(t.Context(), newModel(t, s.URL, nil), ask)
	if err != nil || strings.Join(texts, "") != long || final == nil || final.Message.Content != long {
		t.Fatalf("text %d bytes, final %v, err %v; want the %d-byte reply", len(strings.Join(texts, "")), final != nil, err, len(long))
	}
}

// The adapter reuses the last tool list's name mapping: a different list
// on the next call gets its own mapping, and the same list again the same.
func TestToolNamesFollowTheToolList(t *testing.T) {
	s, err := llmtest.Start(llmtest.Config{Respond: func(r llmtest.Request) llmtest.Reply {
		var calls []llm.ToolCall
		for i, tool := range r.Tools {
			calls = append(calls, llm.ToolCall{ID: fmt.Sprint(i), Name: tool.Name, Arguments: "{}"})
		}
		return llmtest.Reply{ToolCalls: calls}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := newModel(t, s.URL, nil)
	for _, tools := range [][]string{{"gnss.position", "clock"}, {"gnss_position", "gnss.position"}, {"ntrip.status"}, {"gnss.position", "clock"}} {
		req := &llm.Request{Messages: ask.Messages}
		for _, n := range tools {
			req.Tools = append(req.Tools, llm.ToolSpec{Name: n})
		}
		_, final, err := collect(t.Context(), m, req)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range final.Message.ToolCalls {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, tools) {
			t.Errorf("tools %q: calls came back as %q", tools, got)
		}
	}
}

// TestCloseDropsIdleConnections: Close closes the adapter's idle
// connections (an agent that closed kept them, and their goroutines, for
// the life of the process), and a call after it opens a new one. llmtest
// speaks the real protocol on 127.0.0.1 with scripted replies.
func TestCloseDropsIdleConnections(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.Reply{Text: "one"}, llmtest.Reply{Text: "two"}, llmtest.Reply{Text: "three"})
	m, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	call := func() {
		t.Helper()
		for _, err := range m.Generate(t.Context(), &llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}}) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	call()
	call()
	if n := srv.Conns(); n != 1 {
		t.Fatalf("two calls opened %d connections, want 1 (kept alive)", n)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	call()
	if n := srv.Conns(); n != 2 {
		t.Fatalf("after Close the next call used %d connections in all, want a new one (2)", n)
	}
}

// The adapter reuses the wire form of the tools it offered last; a tool
// whose description or schema changed since, or that the caller changed in
// place, is sent as it is now.
func TestToolsSentAsTheyAreNow(t *testing.T) {
	s, err := llmtest.Start(llmtest.Config{Respond: func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: "ok"} }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := newModel(t, s.URL, nil)
	schema := json.RawMessage(`{"type": "object", "properties": {"a": {"type": "string"}}}`) // sent compacted
	tools := []llm.ToolSpec{{Name: "x.one", Description: "first", Parameters: schema}, {Name: "clock"}}
	steps := []func(){
		func() {},
		func() {},
		func() { tools[0].Description = "changed" },
		func() { copy(schema[len(`{"type": "object", "properties": {"`):], "b") }, // the same slice, changed in place
		func() { tools = tools[:1] },
	}
	for i, step := range steps {
		step()
		if i == 1 {
			m = newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.NoStream = true }) // go-openai's encoding
		}
		if _, _, err := collect(t.Context(), m, &llm.Request{Messages: ask.Messages, Tools: tools}); err != nil {
			t.Fatal(err)
		}
		got := s.Requests()[i].Tools
		if len(got) != len(tools) {
			t.Fatalf("call %d: %d tools sent, want %d", i, len(got), len(tools))
		}
		for j, w := range tools {
			params := `{"type":"object","properties":{}}`
			if w.Parameters != nil {
				var c bytes.Buffer
				if err := json.Compact(&c, w.Parameters); err != nil {
					t.Fatal(err)
				}
				params = c.String()
			}
			if got[j].Description != w.Description || string(got[j].Parameters) != params {
				t.Errorf("call %d, tool %d: sent %q %s; want %q %s", i, j, got[j].Description, got[j].Parameters, w.Description, params)
			}
		}
	}
}

// A schema that is not JSON fails the call before anything is sent, on
// either path.
func TestInvalidSchemaNotSent(t *testing.T) {
	s, err := llmtest.Start(llmtest.Config{Respond: func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: "ok"} }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, noStream := range []bool{false, true} {
		m := newModel(t, s.URL, func(c *llm.OpenAIConfig) { c.NoStream = noStream })
		req := &llm.Request{Messages: ask.Messages, Tools: []llm.ToolSpec{{Name: "bad", Parameters: json.RawMessage(`{"type":`)}}}
		if _, _, err := collect(t.Context(), m, req); err == nil {
			t.Errorf("stream %v: a tool with an invalid schema was sent", !noStream)
		}
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests reached the endpoint", n)
	}
}
