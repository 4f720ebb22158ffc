package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

// The turn benchmarks run the same exchange — message → tool call → tool
// result → answer, two streamed model calls — against llmtest on 127.0.0.1
// (real wire protocol, scripted replies), once through a depai agent and once
// as a bare go-openai loop offering the same tools, in the same run. The
// agent's figure includes what the bare loop does not do: the conversation so
// far, recall from memory, schema validation, the safety gate and storing the
// turn durably.

var (
	benchCall   = llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "c1", Name: "clock", Arguments: "{}"}}}
	benchAnswer = llmtest.Reply{Text: "It is noon at the depot."}
)

func benchAgent(b *testing.B, srv *llmtest.Server) *agent.Agent {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "fleet.yaml")
	yaml := fmt.Sprintf("name: bench\nmodel: {base_url: %q, model: bench}\n", srv.URL)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	file, err := config.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	f, err := agent.Open(context.Background(), file, agent.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close(context.Background()) })
	a, err := f.Agent("bench")
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkTurn(b *testing.B) {
	srv, err := llmtest.Start(llmtest.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	a := benchAgent(b, srv)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		srv.Push(benchCall, benchAnswer)
		got, err := a.Ask(ctx, agent.Input{Text: "what time is it?"})
		if err != nil || got != benchAnswer.Text {
			b.Fatalf("reply %q, %v", got, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
}

func BenchmarkBareLoop(b *testing.B) {
	srv, err := llmtest.Start(llmtest.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cfg := openai.DefaultConfig("")
	cfg.BaseURL = srv.URL
	cfg.HTTPClient = &http.Client{}
	client := openai.NewClientWithConfig(cfg)
	// The same tools, with the same schemas, as the agent offers the model.
	var tools []openai.Tool
	for _, sp := range benchAgent(b, srv).Tools().Specs() {
		tools = append(tools, openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
			Name: strings.ReplaceAll(sp.Name, ".", "_"), Description: sp.Description, Parameters: sp.InputSchema,
		}})
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		srv.Push(benchCall, benchAnswer)
		msgs := []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "You are bench."},
			{Role: openai.ChatMessageRoleUser, Content: "what time is it?"},
		}
		for range 2 {
			msg, err := bareCall(ctx, client, msgs, tools)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, msg)
			if len(msg.ToolCalls) == 0 {
				if msg.Content != benchAnswer.Text {
					b.Fatalf("reply %q", msg.Content)
				}
				break
			}
			for _, tc := range msg.ToolCalls {
				out, _ := json.Marshal(map[string]any{"utc": time.Now().UTC(), "unix": time.Now().Unix()})
				msgs = append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: tc.ID, Content: string(out)})
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
}

// bareCall is one streamed call assembled the way a hand-written loop would.
func bareCall(ctx context.Context, c *openai.Client, msgs []openai.ChatCompletionMessage, tools []openai.Tool) (openai.ChatCompletionMessage, error) {
	stream, err := c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{Model: "bench", Messages: msgs, Tools: tools, Stream: true})
	if err != nil {
		return openai.ChatCompletionMessage{}, err
	}
	defer stream.Close()
	msg := openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return msg, nil
		}
		if err != nil {
			return msg, err
		}
		if len(resp.Choices) == 0 {
			continue
		}
		d := resp.Choices[0].Delta
		msg.Content += d.Content
		for _, tc := range d.ToolCalls {
			i := 0
			if tc.Index != nil {
				i = *tc.Index
			}
			for len(msg.ToolCalls) <= i {
				msg.ToolCalls = append(msg.ToolCalls, openai.ToolCall{Type: openai.ToolTypeFunction})
			}
			if tc.ID != "" {
				msg.ToolCalls[i].ID = tc.ID
			}
			msg.ToolCalls[i].Function.Name += tc.Function.Name
			msg.ToolCalls[i].Function.Arguments += tc.Function.Arguments
		}
	}
}
