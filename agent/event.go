package agent

import (
	"encoding/json"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/policy"
)

// Input is what starts a turn: an operator message or command, a message
// from another agent, a sensor event or a schedule tick.
type Input struct {
	Source Source      `json:"source,omitempty"` // default SourceOperator
	From   string      `json:"from,omitempty"`   // operator name, agent name, plugin/sensor name
	Role   policy.Role `json:"role,omitempty"`   // an operator's role; ignored for other sources
	Text   string      `json:"text"`
	// Cause is what led to this input (a record ID, a turn ID, a message ID)
	// and Depth how many wakes, emits or agent messages came before it, so
	// chains of agents waking each other end (see limits.depth).
	Cause string `json:"cause,omitempty"`
	Depth int    `json:"depth,omitempty"`
	// OneShot makes the turn stand alone: it neither sees the agent's
	// conversation (its recent turns) nor joins it, as a request that is
	// complete in itself (an API call, a benchmark's turn) should not.
	// Recall, the policy, the audit and the turn's record are as for any
	// turn; only the in-RAM conversation is left out.
	OneShot bool `json:"one_shot,omitempty"`
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
	EventReply      EventType = "reply"       // Text: the whole reply, as soon as it exists; a command's last event
	// EventStored follows a turn's EventReply once the turn's record is
	// durable, and is the last event of a turn that answered. A consumer
	// that needs only the answer may stop at EventReply: the record is
	// written anyway (stopping does not cancel it), but it is not durable
	// yet — whatever reports a turn as stored (Ask, the operator API's JSON
	// reply) waits for EventStored. A record that could not be written
	// ends the turn with an EventError (CodeUnavailable) instead.
	EventStored EventType = "stored"
	// EventError ends a turn that failed: Code says why (one of the Code
	// constants), Error says it in words. It is the last event of that turn,
	// in place of a reply (or of EventStored, when the answer could not be
	// stored).
	EventError EventType = "error"
)

// Error codes of an EventError.
const (
	CodeModelUnavailable = "model_unavailable" // the endpoint refused, failed or is unreachable
	CodeModelTimeout     = "model_timeout"     // no first byte, or no answer, in time
	CodeModelEmpty       = "model_empty"       // the endpoint answered with neither text nor tool calls
	CodeToolFailed       = "tool_failed"       // a /call failed
	CodeDenied           = "denied"            // the policy refused the action
	CodeForbidden        = "forbidden"         // the operator's role does not allow it
	CodeCancelled        = "cancelled"         // the caller or Ctrl-C cancelled the turn
	CodeEStop            = "estop"             // the emergency stop cancelled the turn
	CodeBusy             = "busy"              // the agent's inbox is full
	CodeBound            = "bound"             // a turn limit was hit; Error names which (limits.model_calls …)
	CodeInvalid          = "invalid"           // a malformed command or input
	CodeUnavailable      = "unavailable"       // the agent is closing or a part it needs is not ready
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
	Code   string          `json:"code,omitempty"` // EventError: one of the Code constants
	// Command names the operator command an event answers; its Data is the
	// command's structured result and Text the same for a terminal.
	Command string `json:"command,omitempty"`
	// TraceID is the OpenTelemetry trace of the turn, on its last event
	// (and in its audit records), when tracing is on.
	TraceID string `json:"trace_id,omitempty"`
}

// Status is an agent's state as /status and the operator API report it.
type Status struct {
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	State    string    `json:"state"` // "starting" (plugins loading), "idle", "busy", "stopped" (e-stop engaged)
	Model    string    `json:"model"` // "none" when no endpoint is configured
	Tools    int       `json:"tools"`
	Turns    uint64    `json:"turns"`
	Queued   int       `json:"queued"` // inputs waiting in the inbox
	Started  time.Time `json:"started"`
	LastTurn time.Time `json:"last_turn,omitzero"`
	Memory   string    `json:"memory"` // recall mode, e.g. "bm25 only (no embeddings endpoint)"
	// Robot is the robot's latest pose, when one of its plugins reports
	// one; a stale pose is marked so.
	Robot *RobotState `json:"robot,omitempty"`
	// KeepOut and Geofence are the areas the agent's safety config keeps
	// its robot out of and in, for maps.
	KeepOut  []config.Zone `json:"keep_out,omitempty"`
	Geofence [][]float64   `json:"geofence,omitempty"`
	// Node, DID and Heartbeat place the agent in the fleet when the mesh
	// is on (/agents): the node it runs on, its did:key, its card's last
	// heartbeat.
	Node      string    `json:"node,omitempty"`
	DID       string    `json:"did,omitempty"`
	Heartbeat time.Time `json:"heartbeat,omitzero"`
}
