package llmtest_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sseData returns the data: payloads of an SSE body.
func sseData(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, p)
		}
	}
	return out
}

func TestStreamWireFormat(t *testing.T) {
	const text = "héllo \"wörld\"\\ \n\t\x01 <tag> & \xff end"
	s := llmtest.NewServer(t, llmtest.Reply{
		Text:      text,
		ToolCalls: []llm.ToolCall{{Name: "clock", Arguments: `{"tz":"UTC"}`}},
		ChunkSize: 4,
	})
	resp := post(t, s.URL+"/chat/completions",
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],
		  "tools":[{"type":"function","function":{"name":"clock","description":"now","parameters":{"type":"object"}}}]}`)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	data := sseData(t, resp.Body)
	if data[len(data)-1] != "[DONE]" {
		t.Fatalf("last event %q; want [DONE]", data[len(data)-1])
	}
	var got, args strings.Builder
	var finish string
	var usage *llm.Usage
	for _, d := range data[:len(data)-1] {
		var c struct {
			Choices []struct {
				Delta struct {
					Content   string `json:"content"`
					ToolCalls []struct {
						Index    int
						ID       string
						Function struct{ Name, Arguments string }
					} `json:"tool_calls"`
				}
				FinishReason *string `json:"finish_reason"`
			}
			Usage *llm.Usage
		}
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatalf("chunk %q: %v", d, err)
		}
		if c.Usage != nil {
			usage = c.Usage
		}
		for _, ch := range c.Choices {
			got.WriteString(ch.Delta.Content)
			for _, tc := range ch.Delta.ToolCalls {
				args.WriteString(tc.Function.Arguments)
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if got.String() != strings.ToValidUTF8(text, "\ufffd") || args.String() != `{"tz":"UTC"}` || finish != "tool_calls" || usage == nil {
		t.Errorf("got text %q args %q finish %q usage %v", got.String(), args.String(), finish, usage)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Messages[0].Content != "hi" || reqs[0].Tools[0].Name != "clock" || !reqs[0].IncludeUsage {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestErrorReplyAndExhaustedScript(t *testing.T) {
	s := llmtest.NewServer(t, llmtest.Reply{Status: 429, Error: "slow down", RetryAfter: 2 * time.Second})
	resp := post(t, s.URL+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(body), `"message":"slow down"`) {
		t.Errorf("got %d Retry-After %q body %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp = post(t, s.URL+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"again"}]}`)
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || !strings.Contains(string(body), "no reply left for request 2") {
		t.Errorf("exhausted script: got %d %s", resp.StatusCode, body)
	}
}

func TestResponderAndBadRequests(t *testing.T) {
	s, err := llmtest.Start(llmtest.Config{Respond: func(r llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "echo: " + r.Messages[len(r.Messages)-1].Content}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp := post(t, s.URL+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`)
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"content":"echo: ab"`) {
		t.Errorf("responder reply: %s", body)
	}
	for _, bad := range []string{`{"model":`, `{"model":"m","messages":[]}`, `{"model":"m","messages":[{"role":"user","content":7}]}`} {
		resp := post(t, s.URL+"/chat/completions", bad)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"type":"invalid_request_error"`) {
			t.Errorf("%s: got %d %s; want a 400 OpenAI error", bad, resp.StatusCode, body)
		}
	}
	if r := s.Requests(); len(r) != 2 || r[0].Err != nil || r[1].Err == nil {
		t.Errorf("recorded %d requests; want the good one and the undecodable one with Err set", len(r))
	}
}
