package llm_test

import (
	"testing"
	"time"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

// FuzzStream feeds arbitrary bytes as the endpoint's SSE body: the adapter
// must end every time with a reply or an error, never a panic or a hang.
func FuzzStream(f *testing.F) {
	for _, seed := range []string{
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"x\",\"arguments\":\"{\\\"\"}}]}}]}\n\n" +
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
		"data: {\"error\":{\"message\":\"boom\"}}\n\n",
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"n\"}}]}}]}\n\n",
		": keep-alive\n\nevent: x\n\n",
		"data: [DONE]\n\n",
		"\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	srv, err := llmtest.Start(llmtest.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	m, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL, MaxRetries: -1, Timeout: 10 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) == 0 {
			return // an empty Raw means "no raw body" to llmtest
		}
		srv.Push(llmtest.Reply{Raw: string(raw)})
		var final *llm.Response
		var gotErr error
		for c, err := range m.Generate(t.Context(), ask) {
			if err != nil {
				gotErr = err
				break
			}
			if c.Final != nil {
				final = c.Final
			}
		}
		if (final == nil) == (gotErr == nil) {
			t.Fatalf("final %+v, error %v: want exactly one", final, gotErr)
		}
	})
}

// FuzzWhole feeds arbitrary bytes as the body of a non-streamed reply
// (model.stream: false): a reply or an error, never a panic or a hang.
func FuzzWhole(f *testing.F) {
	for _, seed := range []string{
		`{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"total_tokens":3}}`,
		`{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"clock","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`,
		`{"choices":[{"index":0,"message":{"role":"assistant","tool_calls":[{"index":0,"function":{"name":"x"}},{"index":0,"function":{"name":"y"}}]}}]}`,
		`{"choices":[]}`,
		`{"choices":[{"index":1,"message":{"content":"wrong choice"}}]}`,
		`{"error":{"message":"boom"}}`,
		`[]`,
		"\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	srv, err := llmtest.Start(llmtest.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	m, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL, MaxRetries: -1, Timeout: 10 * time.Second, NoStream: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) == 0 {
			return
		}
		srv.Push(llmtest.Reply{Raw: string(raw)})
		var final *llm.Response
		var gotErr error
		for c, err := range m.Generate(t.Context(), ask) {
			if err != nil {
				gotErr = err
				break
			}
			if c.Final != nil {
				final = c.Final
			}
		}
		if (final == nil) == (gotErr == nil) {
			t.Fatalf("final %+v, error %v: want exactly one", final, gotErr)
		}
		if final != nil && final.Message.Empty() {
			t.Fatalf("an empty message came back as a reply: %+v", final)
		}
	})
}
