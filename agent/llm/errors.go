package llm

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// The kinds of a failed model call, for errors.Is: every *Error is one of
// them, so a caller maps a failure to its own codes without reading
// messages (the agent's turn maps them to model_unavailable, model_timeout
// and model_empty). A call ended by the caller's ctx is none of them: its
// error wraps context.Canceled or the ctx's cause instead.
var (
	// ErrUnavailable: the endpoint refused the request, failed, or could not
	// be reached.
	ErrUnavailable = errors.New("model unavailable")
	// ErrTimeout: the endpoint sent nothing within the first-byte timeout,
	// or no complete reply within the per-call timeout.
	ErrTimeout = errors.New("model timeout")
	// ErrEmpty: the endpoint answered with neither text nor tool calls, also
	// when asked again without streaming.
	ErrEmpty = errors.New("model answered nothing")
)

// Error is a failed model call: the endpoint answered with an error status,
// could not be reached, did not answer in time, or sent a reply that is not
// a usable chat completion.
type Error struct {
	Kind      error  // ErrUnavailable (also when nil), ErrTimeout or ErrEmpty
	Status    int    // HTTP status; 0 when the endpoint was not reached or the stream broke
	Message   string // the endpoint's own message where it gave one
	Retryable bool   // a later attempt may succeed (429, 5xx, connection failures)
	Endpoint  string // the URL called
	Attempts  int    // how many attempts were made before giving up
}

// Unwrap returns the error's kind, so that errors.Is(err, ErrTimeout) works.
func (e *Error) Unwrap() error {
	if e.Kind == nil {
		return ErrUnavailable
	}
	return e.Kind
}

// Is makes a timeout also a context.DeadlineExceeded, as callers that
// know only the standard library's deadline error expect.
func (e *Error) Is(target error) bool {
	return target == context.DeadlineExceeded && e.Kind == ErrTimeout
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("llm: ")
	if e.Endpoint != "" {
		b.WriteString(e.Endpoint)
		b.WriteString(": ")
	}
	if e.Status != 0 {
		b.WriteString("HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Attempts > 1 {
		b.WriteString(" (gave up after ")
		b.WriteString(strconv.Itoa(e.Attempts))
		b.WriteString(" attempts)")
	}
	return b.String()
}
