package llm

import (
	"strconv"
	"strings"
)

// Error is a failed model call: the endpoint answered with an error status,
// could not be reached, or sent a stream that is not a chat completion.
type Error struct {
	Status    int    // HTTP status; 0 when the endpoint was not reached or the stream broke
	Message   string // the endpoint's own message where it gave one
	Retryable bool   // a later attempt may succeed (429, 5xx, connection failures)
	Endpoint  string // the URL called
	Attempts  int    // how many attempts were made before giving up
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
