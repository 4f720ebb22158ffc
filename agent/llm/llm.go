// Package llm is depai's model interface: one streamed Generate call with
// native tool calling. OpenAI adapts any OpenAI-compatible endpoint (OpenAI,
// vLLM, Ollama, llama.cpp); llmtest serves the same wire format with scripted
// replies for tests.
package llm

import (
	"context"
	"encoding/json"
	"iter"
	"slices"
	"strings"
)

// Model generates one assistant message for a conversation.
type Model interface {
	// Generate streams the reply. Text deltas arrive as they are produced; the
	// last chunk has Final set and carries the whole message, its tool calls,
	// the finish reason and token usage. An error ends the stream.
	Generate(ctx context.Context, req *Request) iter.Seq2[Chunk, error]
}

// Role is who said a message.
type Role string

const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Request is one model call.
type Request struct {
	Messages    []Message
	Tools       []ToolSpec
	MaxTokens   int      // 0: the endpoint's default
	Temperature *float32 // nil: the endpoint's default
}

// Message is one entry of the conversation.
type Message struct {
	Role       Role       `json:"role"`
	Content    string     `json:"content,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`   // assistant messages
	ToolCallID string     `json:"tool_call_id,omitempty"` // tool messages: the call answered
}

// Empty reports whether m is an assistant message that says nothing: no
// text and no tool calls. Such a message is never history: Generate never
// returns one (it fails with ErrEmpty instead), the OpenAI adapter leaves
// any it is given out of the request, and a caller should store none (use
// Compact on a conversation read back from storage).
func (m Message) Empty() bool {
	return m.Role == RoleAssistant && strings.TrimSpace(m.Content) == "" && len(m.ToolCalls) == 0
}

// Compact returns msgs without its empty assistant messages (see
// Message.Empty), reusing msgs' array.
func Compact(msgs []Message) []Message {
	return slices.DeleteFunc(msgs, Message.Empty)
}

// ToolCall is the model's request to run a tool. Arguments is the raw JSON
// text the model produced, which may be invalid.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolSpec describes a tool offered to the model. Parameters is a JSON Schema.
type ToolSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
}

// Chunk is one piece of a streamed reply.
type Chunk struct {
	Text  string    // a content delta; empty on the final chunk
	Final *Response // set on the last chunk only
}

// Response is a whole reply.
type Response struct {
	Message      Message
	FinishReason string // "stop", "tool_calls", "length", "content_filter"
	Usage        Usage
}

// Usage counts tokens of one call.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}
