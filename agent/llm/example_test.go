package llm_test

import (
	"context"
	"fmt"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

func ExampleNewOpenAI() {
	// llmtest stands in for the endpoint: the protocol is real, the reply is
	// scripted.
	srv, err := llmtest.Start(llmtest.Config{Replies: []llmtest.Reply{
		{Text: "Checking the clock.", ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "clock", Arguments: `{"tz":"UTC"}`}}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	model, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL, Model: "llama3.2"})
	if err != nil {
		fmt.Println(err)
		return
	}
	req := &llm.Request{
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "What time is it?"}},
		Tools:    []llm.ToolSpec{{Name: "clock", Description: "The current time."}},
	}
	for chunk, err := range model.Generate(context.Background(), req) {
		if err != nil {
			fmt.Println(err)
			return
		}
		if chunk.Final != nil {
			fmt.Println()
			fmt.Println("finish:", chunk.Final.FinishReason)
			for _, c := range chunk.Final.Message.ToolCalls {
				fmt.Println("call:", c.Name, c.Arguments)
			}
			continue
		}
		fmt.Print(chunk.Text)
	}
	// Output:
	// Checking the clock.
	// finish: tool_calls
	// call: clock {"tz":"UTC"}
}
