// Package operator is the HTTP API through which operators command a running
// fleet, and the Go client that `depai chat` uses to speak it.
//
// Every route needs an operator's bearer token: the generated one (see
// [LoadOrCreateToken]), which is the admin named "operator", or one of the
// named operators of the config, each with a role (viewer, operator,
// admin). The server passes the operator's name and role with every
// message; the agent's command table decides what the role may do.
//
//	GET  /v1/agents                 the agents and their status
//	GET  /v1/agents/{name}          one agent's status
//	POST /v1/agents/{name}/messages {"text": "/status"} → the turn, streamed
//	GET  /v1/rosbridge              rosbridge v2 over WebSocket (package rosbridge)
//	POST /v1/memory/{namespace}     {"kind": "observation", "text": "…"} → the record (Config.Memory)
//
// A put into memory answers 201 with a [PutResult] once the record and its
// audit record are durable (one commit). With an Idempotency-Key header a
// retry stores nothing and answers 200 with the first request's record
// (Idempotent-Replayed: true), across restarts of depai too, for 24 hours;
// the key with another body is refused with 422 idempotency_key_reused.
//
// A message or command is answered with the turn's events as server-sent
// events (event: delta | tool_call | tool_result | reply | error, data: the
// agent.Event as JSON), or, when the request sends Accept:
// application/json, with one [TurnResult]. A turn ends with its reply, or
// with an error event carrying the agent's code and message (data:
// {"type":"error","turn_id":…,"code":"model_timeout","error":"…"}). While a
// turn runs, a comment line (": keep-alive") goes out every 10 s, so that
// proxies and clients see the stream is alive. Failures of JSON requests,
// and of requests refused before a turn starts, are JSON with a non-2xx
// status:
//
//	{"error": {"code": "unknown_agent", "message": "no agent \"x\"; agents: a, b"}}
//
// A turn that fails maps its code to a status (see [StatusOf]):
//
//	model_unavailable, model_empty, tool_failed  502
//	model_timeout                                504
//	estop, denied, cancelled                     409
//	forbidden (the operator's role)              403
//	busy                                         429
//	bound                                        422
//	invalid                                      400
//	unavailable                                  503
//	any other                                    500
//
// The server listens on loopback only: the token travels in clear HTTP, so
// the API is for operators on the same machine (or reaching it through an
// SSH tunnel), not for the network.
package operator

import (
	"context"
	"iter"
	"net/http"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/policy"
)

// Agent is what the API needs of one agent; *agent.Agent satisfies it.
type Agent interface {
	Name() string
	Status() agent.Status
	Handle(ctx context.Context, in agent.Input) iter.Seq2[agent.Event, error]
}

// Message is the body of POST /v1/agents/{name}/messages. Who sends it is
// the operator whose token the request carries.
type Message struct {
	Text string `json:"text"` // a message or an operator command such as "/status"
}

// Operator is one holder of a token: a person or a program with a role.
type Operator struct {
	Name  string      // in every input it sends (agent.Input.From) and in the audit log
	Role  policy.Role // what it may do; the agent's command table enforces it
	Token string      // its bearer token
}

// TurnResult is the answer to a message sent with Accept: application/json.
type TurnResult struct {
	Reply  agent.Event   `json:"reply"`  // the EventReply that ended the turn
	Events []agent.Event `json:"events"` // tool calls, tool results and the reply, in order; deltas are left out (the reply holds their text)
}

// Error is the JSON error body of every failed request, and the error the
// Client returns for one and for an error event.
type Error struct {
	Status  int    `json:"-"`       // the HTTP status; 0 for an error event inside a stream
	Code    string `json:"code"`    // one of the Code constants, or the agent's (agent.CodeModelTimeout …)
	Message string `json:"message"` // for people
}

func (e *Error) Error() string { return "operator: " + e.Message }

// CodeForbidden is the code of a turn refused because of the operator's
// role (HTTP 403); the policy engine decides it.
const CodeForbidden = agent.CodeForbidden

// StatusOf is the HTTP status of a turn that ended with an error event of
// this code.
func StatusOf(code string) int {
	switch code {
	case agent.CodeModelUnavailable, agent.CodeModelEmpty, agent.CodeToolFailed:
		return http.StatusBadGateway
	case agent.CodeModelTimeout:
		return http.StatusGatewayTimeout
	case agent.CodeEStop, agent.CodeDenied, agent.CodeCancelled:
		return http.StatusConflict
	case CodeForbidden:
		return http.StatusForbidden
	case agent.CodeBusy:
		return http.StatusTooManyRequests
	case agent.CodeBound:
		return http.StatusUnprocessableEntity
	case agent.CodeInvalid:
		return http.StatusBadRequest
	case agent.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

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
	CodeBodyTimeout      = "body_timeout"
)

// errorBody is the envelope of an Error on the wire.
type errorBody struct {
	Error *Error `json:"error"`
}
