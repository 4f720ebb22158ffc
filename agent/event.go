package agent

import (
	"encoding/json"
	"time"
)

// Input is what starts a turn: an operator message or command, a message
// from another agent, a sensor event or a schedule tick.
type Input struct {
	Source Source `json:"source,omitempty"` // default SourceOperator
	From   string `json:"from,omitempty"`   // operator id, agent name, plugin/sensor name
	Text   string `json:"text"`
}

// Source says where an input came from.
type Source string

const (
	SourceOperator Source = "operator"
	SourceAgent    Source = "agent"
	SourceSensor   Source = "sensor"
	SourceSchedule Source = "schedule"
)

// EventType names the events a turn streams.
type EventType string

const (
	EventDelta      EventType = "delta"       // Text: a piece of the reply as the model produces it
	EventToolCall   EventType = "tool_call"   // Tool, CallID, Data: the arguments
	EventToolResult EventType = "tool_result" // Tool, CallID, Data: the result, or Error
	EventReply      EventType = "reply"       // Text: the whole reply; the last event of a turn
)

// Event is one step of a turn as it happens.
type Event struct {
	Type   EventType       `json:"type"`
	TurnID string          `json:"turn_id"`
	Text   string          `json:"text,omitempty"`
	Tool   string          `json:"tool,omitempty"`
	CallID string          `json:"call_id,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Status is an agent's state as /status and the operator API report it.
type Status struct {
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	State    string    `json:"state"` // "idle", "busy", "stopped" (e-stop engaged)
	Model    string    `json:"model"` // "none" when no endpoint is configured
	Tools    int       `json:"tools"`
	Turns    uint64    `json:"turns"`
	Started  time.Time `json:"started"`
	LastTurn time.Time `json:"last_turn,omitzero"`
	Memory   string    `json:"memory"` // recall mode, e.g. "bm25 only (no embeddings endpoint)"
}
