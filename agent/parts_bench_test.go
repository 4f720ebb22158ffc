package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// echoModel answers a user message with a call of the first tool offered and
// a tool result with "final: <result>" (the harness's scripted endpoint,
// without the HTTP).
type echoModel struct{}

func (echoModel) Generate(_ context.Context, req *llm.Request) iter.Seq2[llm.Chunk, error] {
	return func(yield func(llm.Chunk, error) bool) {
		last := req.Messages[len(req.Messages)-1]
		resp := &llm.Response{FinishReason: "stop", Message: llm.Message{Role: llm.RoleAssistant}}
		if last.Role == llm.RoleTool {
			resp.Message.Content = "final: " + last.Content
		} else {
			args, _ := json.Marshal(map[string]string{"text": last.Content})
			resp.Message.ToolCalls = []llm.ToolCall{{ID: "call_1", Name: req.Tools[0].Name, Arguments: string(args)}}
		}
		yield(llm.Chunk{Final: resp}, nil)
	}
}

// BenchmarkTurnParts is what the parts of a turn that the bare loop does
// not have cost on their own, after 1000 turns of the harness's kind
// ("ping N" → echo → "final: ping N") are stored: recall for the input and
// composing the conversation around it, the durable turn record, and the
// policy decision for a read-only tool call (not audited) and a write
// (audited: a decision record before the call, an outcome record after).
func BenchmarkTurnParts(b *testing.B) {
	dir := b.TempDir()
	file, err := config.Parse(filepath.Join(dir, "peer.yaml"), []byte("name: peer\nmodel: {base_url: http://127.0.0.1:1/v1, model: scripted}\ntools: [clock]\n"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	f, err := Open(ctx, file, Options{
		DataDir: filepath.Join(dir, "data"),
		Models:  func(context.Context, string, config.Model) (llm.Model, error) { return echoModel{}, nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close(ctx) })
	a, err := f.Agent("peer")
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, err := a.Ask(ctx, Input{Text: fmt.Sprintf("ping %d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	a.syncRecall(ctx)
	in := Input{Text: "ping 1000", Source: SourceOperator}
	b.Run("recall", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var sb strings.Builder
			a.recalled(ctx, &sb, in, nil)
			if sb.Len() == 0 {
				b.Fatal("nothing recalled")
			}
		}
	})
	b.Run("compose", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.compose(ctx, in)
		}
	})
	b.Run("store-turn", func(b *testing.B) {
		rec := &turnRecord{N: 1, Input: in, Reply: "final: ping 1000", EndedBy: "answer", ModelCalls: 2, Tokens: 120,
			Calls: []callNote{{ID: "call_1", Tool: "clock", Args: json.RawMessage(`{"text":"ping 1000"}`), Result: json.RawMessage(`{"echo":"ping 1000"}`)}}}
		b.ReportAllocs()
		for b.Loop() {
			if err := a.storeTurn(ctx, ulid.Make().String(), rec, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name   string
		effect wire.Effect
	}{{"authorize-read", wire.EffectNone}, {"authorize-write-audited", wire.EffectWrite}} {
		b.Run(c.name, func(b *testing.B) {
			act := policy.Action{Agent: "peer", Principal: policy.Principal{Kind: policy.PrincipalModel, ID: "peer"}, Kind: policy.ActionTool,
				Name: "clock", Effect: c.effect, Args: json.RawMessage(`{"text":"ping 1000"}`)}
			b.ReportAllocs()
			for b.Loop() {
				done, err := f.policy.Authorize(ctx, act)
				if err != nil {
					b.Fatal(err)
				}
				done(json.RawMessage(`{"echo":"ping 1000"}`), nil)
			}
		})
	}
	// The harness's case after some thousands of turns: recall's hits are
	// older than what memory keeps decoded in its ring of newest records.
	b.Run("recall-past-ring", func(b *testing.B) {
		for i := range 20 {
			fill := make([]memory.Record, 100)
			for j := range fill {
				fill[j] = memory.Record{Namespace: a.ns, Kind: memory.KindObservation, Text: fmt.Sprintf("filler %d-%d", i, j)}
			}
			if _, err := a.mem.Put(ctx, fill...); err != nil {
				b.Fatal(err)
			}
		}
		a.syncRecall(ctx)
		b.ReportAllocs()
		for b.Loop() {
			var sb strings.Builder
			a.recalled(ctx, &sb, in, nil)
			if !strings.Contains(sb.String(), "ping") {
				b.Fatal("no turn recalled")
			}
		}
	})
}
