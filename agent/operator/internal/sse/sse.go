// Package sse writes and reads server-sent events (the text/event-stream
// format of the WHATWG HTML standard), as the operator API streams a turn.
//
// Only what the operator API needs is implemented: the event, data and id
// fields, comments, and lines ending in "\n" or "\r\n". A lone "\r" line
// ending (allowed by the standard, produced by no server we talk to) is not
// recognised as a line break.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Event is one dispatched server-sent event.
type Event struct {
	Type string // "message" when the stream names none
	ID   string
	Data string
}

// Write writes one event. Data may contain newlines; each line becomes its
// own data field, which a reader joins back with "\n".
func Write(w io.Writer, typ string, data []byte) error {
	if strings.ContainsAny(typ, "\r\n") {
		return fmt.Errorf("sse: event type %q contains a line break", typ)
	}
	var b bytes.Buffer
	b.Grow(len(typ) + len(data) + 16)
	if typ != "" {
		b.WriteString("event: ")
		b.WriteString(typ)
		b.WriteByte('\n')
	}
	for line := range bytes.Lines(data) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		b.WriteString("data: ")
		b.Write(line)
		b.WriteByte('\n')
	}
	if len(data) == 0 || data[len(data)-1] == '\n' {
		b.WriteString("data: \n")
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// Comment writes a comment line, which readers skip: a keep-alive that
// shows the stream is still open.
func Comment(w io.Writer, text string) error {
	if strings.ContainsAny(text, "\r\n") {
		return fmt.Errorf("sse: comment %q contains a line break", text)
	}
	_, err := io.WriteString(w, ": "+text+"\n\n")
	return err
}

// ErrTooLong is returned when a line or an event's data exceeds the reader's
// limit.
var ErrTooLong = errors.New("sse: event too long")

// Reader reads events from a stream.
type Reader struct {
	r   *bufio.Reader
	max int
}

// NewReader returns a Reader that rejects lines and events whose data are
// longer than max bytes.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 4096), max: max}
}

// Next returns the next event. At the end of the stream it returns io.EOF; a
// stream that ends in the middle of an event returns io.ErrUnexpectedEOF,
// because the standard discards such an event.
func (r *Reader) Next() (Event, error) {
	var (
		ev      Event
		data    strings.Builder
		hasData bool
		partial bool // any field seen since the last dispatch
	)
	for {
		line, err := r.line()
		if err != nil {
			if err == io.EOF && partial {
				return Event{}, io.ErrUnexpectedEOF
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if !hasData {
				// The standard resets the buffers and dispatches nothing.
				ev, data, partial = Event{}, strings.Builder{}, false
				continue
			}
			ev.Data = data.String()
			if ev.Type == "" {
				ev.Type = "message"
			}
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		partial = true
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.Type = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			hasData = true
			if data.Len()+len(value) > r.max {
				return Event{}, ErrTooLong
			}
			data.Write(value)
		case "id":
			if !bytes.ContainsRune(value, 0) {
				ev.ID = string(value)
			}
		}
	}
}

// line returns the next line without its line ending.
func (r *Reader) line() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		if len(line)+len(chunk) > r.max+2 {
			return nil, ErrTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) > 0:
			// A final line without a line ending is not a complete line.
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
