package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

// The benchmarks compare the adapter with go-openai used bare for the same
// call: one streamed reply with text and one tool call, served by llmtest on
// 127.0.0.1 (the protocol is real, the reply scripted). Both figures include
// the server's own work in the same process; the ratio is what matters.

var benchReply = llmtest.Reply{
	Text:      "Checking rover-1's position before I answer.",
	ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "gnss_position", Arguments: `{"rover":"rover-1","fix":"rtk","max_age_s":5}`}},
}

var benchSchema = json.RawMessage(`{"type":"object","properties":{"rover":{"type":"string"},"fix":{"type":"string","enum":["any","rtk"]},"max_age_s":{"type":"integer"}},"required":["rover"]}`)

func benchServer(b *testing.B) *llmtest.Server {
	s, err := llmtest.Start(llmtest.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

func BenchmarkGenerate(b *testing.B) {
	s := benchServer(b)
	m, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: s.URL, Model: "bench", HTTPClient: &http.Client{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.Push(benchReply)
		req := &llm.Request{
			Messages: []llm.Message{{Role: llm.RoleSystem, Content: "You are scout."}, {Role: llm.RoleUser, Content: "Where is rover-1?"}},
			Tools:    []llm.ToolSpec{{Name: "gnss_position", Description: "Latest position fix.", Parameters: benchSchema}},
		}
		var final *llm.Response
		for c, err := range m.Generate(ctx, req) {
			if err != nil {
				b.Fatal(err)
			}
			if c.Final != nil {
				final = c.Final
			}
		}
		if final == nil || len(final.Message.ToolCalls) != 1 || final.Message.ToolCalls[0].Arguments != benchReply.ToolCalls[0].Arguments {
			b.Fatalf("final = %+v", final)
		}
	}
}

func BenchmarkBareGoOpenAI(b *testing.B) {
	s := benchServer(b)
	cfg := openai.DefaultConfig("")
	cfg.BaseURL = s.URL
	cfg.HTTPClient = &http.Client{}
	client := openai.NewClientWithConfig(cfg)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.Push(benchReply)
		req := openai.ChatCompletionRequest{
			Model: "bench",
			Messages: []openai.ChatCompletionMessage{
				{Role: openai.ChatMessageRoleSystem, Content: "You are scout."},
				{Role: openai.ChatMessageRoleUser, Content: "Where is rover-1?"},
			},
			Tools: []openai.Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
				Name: "gnss_position", Description: "Latest position fix.", Parameters: benchSchema,
			}}},
			Stream:        true,
			StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		}
		stream, err := client.CreateChatCompletionStream(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		var text strings.Builder
		var name string
		var args strings.Builder
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range r.Choices {
				text.WriteString(c.Delta.Content)
				for _, tc := range c.Delta.ToolCalls {
					name += tc.Function.Name
					args.WriteString(tc.Function.Arguments)
				}
			}
		}
		stream.Close()
		if name != "gnss_position" || args.String() != benchReply.ToolCalls[0].Arguments {
			b.Fatalf("got %q %q", name, args.String())
		}
	}
}
