package llm

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	openai "github.com/sashabaranov/go-openai"
)

// FuzzAppendRequest checks that the streamed request body means what
// go-openai's marshalling of the same request means, field for field.
func FuzzAppendRequest(f *testing.F) {
	f.Add("m", "sys <b>", "user \"q\"", "call_1", "gnss_position", `{"fix":"rtk"}`, "tool out", 128, float32(0.5), true)
	f.Add("", "", "", "", "x", "", "", 0, float32(0), false)
	f.Add("gpt-5", "s", "u", "id", "n", "{}", "r", 7, float32(1e-30), true)
	f.Fuzz(func(t *testing.T, model, system, user, callID, name, args, result string, maxTokens int, temp float32, withTools bool) {
		w := openai.ChatCompletionRequest{
			Model: model,
			Messages: []openai.ChatCompletionMessage{
				{Role: "system", Content: system},
				{Role: "user", Content: user},
				{Role: "assistant", ToolCalls: []openai.ToolCall{{ID: callID, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: name, Arguments: args}}}},
				{Role: "tool", Content: result, ToolCallID: callID},
			},
			MaxTokens:     maxTokens,
			Temperature:   temp,
			Stream:        true,
			StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		}
		if withTools {
			w.Tools = []openai.Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: name, Description: system, Parameters: json.RawMessage(`{"type":"object","properties":{"a":{"type":"string","description":"<x>"}}}`)}}}
		}
		want, err := json.Marshal(w)
		if err != nil {
			t.Skip() // go-openai refuses it too
		}
		var buf bytes.Buffer
		if err := appendRequest(&buf, &w); err != nil {
			t.Fatal(err)
		}
		var g, e any
		if err := json.Unmarshal(buf.Bytes(), &g); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, buf.Bytes())
		}
		if err := json.Unmarshal(want, &e); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, e) {
			t.Fatalf("body\n%s\nmeans something else than go-openai's\n%s", buf.Bytes(), want)
		}
	})
}
