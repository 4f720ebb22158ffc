package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/agent/tool"
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

// scriptedModel is the harness's scripted endpoint without the HTTP: it
// answers a user message with a call of the first tool offered (its "text"
// argument set to the message) and a tool result with "final: <result>". The
// core benchmarks use it so that their allocations, CPU and heap are the
// agent's alone, not the model client's (agent/llm has its own benchmarks).
type scriptedModel struct{}

func (scriptedModel) Generate(_ context.Context, req *llm.Request) iter.Seq2[llm.Chunk, error] {
	return func(yield func(llm.Chunk, error) bool) {
		last := req.Messages[len(req.Messages)-1]
		resp := &llm.Response{FinishReason: "stop", Usage: llm.Usage{TotalTokens: 100}}
		resp.Message.Role = llm.RoleAssistant
		if last.Role == llm.RoleTool {
			resp.Message.Content = "final: " + last.Content
		} else {
			args, _ := json.Marshal(map[string]string{"text": last.Content})
			resp.FinishReason = "tool_calls"
			resp.Message.ToolCalls = []llm.ToolCall{{ID: "call_1", Name: req.Tools[0].Name, Arguments: string(args)}}
		}
		yield(llm.Chunk{Final: resp}, nil)
	}
}

// coreAgent is the harness's depai-inproc agent on the scripted model:
// persona, clock, and the in-process echo tool "aecho.echo" with the given
// effect (a write is audited: a decision and an outcome record per call).
// extra is appended to the agent's YAML.
func coreAgent(b *testing.B, effect tool.Effect, extra string) *agent.Agent {
	b.Helper()
	dir := b.TempDir()
	yaml := "name: peer\npersona: You are a test agent. Call the echo tool with the user's text, then answer.\n" +
		"model: {base_url: http://127.0.0.1:1/v1, model: scripted}\ntools: [clock]\nlimits: {model_calls: 4, tool_calls: 4}\n" + extra
	file, err := config.Parse(filepath.Join(dir, "peer.yaml"), []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	type echoArgs struct {
		Text string `json:"text" jsonschema:"the text to echo"`
	}
	type echoResult struct {
		Echo string `json:"echo"`
	}
	echo, err := tool.New("aecho.echo", "Echoes the given text back.", effect, func(_ context.Context, in echoArgs) (echoResult, error) {
		return echoResult{Echo: in.Text}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	f, err := agent.Open(context.Background(), file, agent.Options{
		DataDir: filepath.Join(dir, "data"),
		Models:  func(context.Context, string, config.Model) (llm.Model, error) { return scriptedModel{}, nil },
		Tools:   map[string][]tool.Tool{"peer": {echo}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close(context.Background()) })
	a, err := f.Agent("peer")
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func coreTurn(b *testing.B, a *agent.Agent, i int) { coreTurnIn(b, a, i, false) }

func coreTurnIn(b *testing.B, a *agent.Agent, i int, oneShot bool) {
	in := fmt.Sprintf("ping %d", i)
	got, err := a.Ask(context.Background(), agent.Input{Text: in, OneShot: oneShot})
	if err != nil || !strings.HasPrefix(got, "final: ") || !strings.Contains(got, in) {
		b.Fatalf("turn %q: reply %q, %v", in, got, err)
	}
}

// BenchmarkTurnCore is the agent's own cost of the harness turn (no HTTP),
// and what each part of it costs: the default turn has recall (a search of
// every input), the policy decision and the durable turn record; "audited"
// makes the tool a write, so each call adds two audit records; "one-shot"
// leaves out the conversation (agent.Input.OneShot), as the harness's
// depai peers do. What recall and the turn record cost alone is
// BenchmarkTurnParts (internal).
func BenchmarkTurnCore(b *testing.B) {
	for _, c := range []struct {
		name    string
		effect  tool.Effect
		extra   string
		oneShot bool
	}{
		{"default", tool.EffectNone, "", false},
		{"audited", tool.EffectWrite, "", false},
		{"one-shot", tool.EffectNone, "", true}, // as the harness's depai peers run
	} {
		b.Run(c.name, func(b *testing.B) {
			a := coreAgent(b, c.effect, c.extra)
			for i := range 100 {
				coreTurnIn(b, a, i, c.oneShot)
			}
			b.ReportAllocs()
			i := 100
			for b.Loop() {
				coreTurnIn(b, a, i, c.oneShot)
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
		})
	}
}

// BenchmarkTurnFootprint is target 2 of issue 14: the live heap after a
// forced GC once 100 turns are done, and its growth over the next b.N
// (run it with -benchtime 10000x), and the goroutines left over.
func BenchmarkTurnFootprint(b *testing.B) {
	a := coreAgent(b, tool.EffectNone, "")
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for i := range 100 {
		coreTurn(b, a, i)
	}
	h0, g0 := heap(), runtime.NumGoroutine()
	i := 100
	for b.Loop() {
		coreTurn(b, a, i)
		i++
	}
	b.StopTimer()
	h1 := heap()
	b.ReportMetric(float64(h0)/(1<<20), "heap@100-MiB")
	b.ReportMetric((float64(h1)-float64(h0))/(1<<20), "heap-growth-MiB")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0), "goroutines-left")
}
