// Package operator is the HTTP API through which operators command a running
// fleet, and the Go client that `depai chat` uses to speak it.
//
// Every route needs the fleet's bearer token (see [LoadOrCreateToken]):
//
//	GET  /v1/agents                 the agents and their status
//	GET  /v1/agents/{name}          one agent's status
//	POST /v1/agents/{name}/messages {"text": "/status"} → the turn, streamed
//
// A message or command is answered with the turn's events as server-sent
// events (event: delta | tool_call | tool_result | reply, data: the
// agent.Event as JSON; the reply is last), or, when the request sends
// Accept: application/json, with one [TurnResult]. Failures are JSON:
//
//	{"error": {"code": "unknown_agent", "message": "no agent \"x\"; agents: a, b"}}
//
// The server listens on loopback only: the token travels in clear HTTP, so
// the API is for operators on the same machine (or reaching it through an
// SSH tunnel), not for the network.
package operator

import (
	"context"
	"iter"

	"github.com/depai/depai/agent"
)

// Agent is what the API needs of one agent; *agent.Agent satisfies it.
type Agent interface {
	Name() string
	Status() agent.Status
	Handle(ctx context.Context, in agent.Input) iter.Seq2[agent.Event, error]
}

// Message is the body of POST /v1/agents/{name}/messages.
type Message struct {
	Text string `json:"text"`           // a message or an operator command such as "/status"
	From string `json:"from,omitempty"` // operator id; default "operator"
}

// TurnResult is the answer to a message sent with Accept: application/json.
type TurnResult struct {
	Reply  agent.Event   `json:"reply"`  // the EventReply that ended the turn
	Events []agent.Event `json:"events"` // tool calls, tool results and the reply, in order; deltas are left out (the reply holds their text)
}

// Error is the JSON error body of every failed request, and the error the
// Client returns for one.
type Error struct {
	Status  int    `json:"-"`       // the HTTP status; 0 for an error event inside a stream
	Code    string `json:"code"`    // one of the Code constants
	Message string `json:"message"` // for people
}

func (e *Error) Error() string { return "operator: " + e.Message }

// Error codes.
const (
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnknownAgent     = "unknown_agent"
	CodeBadJSON          = "bad_json"
	CodeMissingText      = "missing_text"
	CodeTooLarge         = "too_large"
	CodeTurnFailed       = "turn_failed"
	CodeShuttingDown     = "shutting_down"
)

// errorBody is the envelope of an Error on the wire.
type errorBody struct {
	Error *Error `json:"error"`
}
