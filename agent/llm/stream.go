package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/depai/depai/internal/jsonstr"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"

	openai "github.com/sashabaranov/go-openai"
)

// The streamed call is the one every turn makes, twice or more, so it is
// written here rather than through go-openai's client: go-openai marshals
// each message and tool twice (its MarshalJSON methods) and reads the
// stream a line at a time into fresh buffers, about 180 allocations a call
// against some 40 here. It speaks the same wire format — the request body is
// byte-for-byte what go-openai sends, bar HTML escaping in strings
// (testdata/request.golden) — and reads the stream as go-openai does: data
// lines, "[DONE]", an error object in the stream or in place of it, and at
// most emptyLineLimit other lines in a row. The non-streamed call still
// goes through go-openai (whole).

// emptyLineLimit is go-openai's bound on lines in a row that carry no data.
const emptyLineLimit = 300

// maxErrorBody bounds what is read of an error response or kept of a
// stream's non-data lines.
const maxErrorBody = 64 << 10

// Shared header values: net/http only reads them, and a caller's transport
// that adds to a header gets a new array (len == cap).
var (
	hdrJSON        = []string{"application/json"}[:1:1]
	hdrEventStream = []string{"text/event-stream"}[:1:1]
	hdrNoCache     = []string{"no-cache"}[:1:1]
	hdrKeepAlive   = []string{"keep-alive"}[:1:1]
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// chatStream is one streamed reply being read.
type chatStream struct {
	resp    *http.Response
	r       *bufio.Reader
	body    *bytes.Buffer // the request body, pooled again on Close
	line    []byte        // a line longer than the reader's buffer
	nondata []byte        // non-data lines, in case they are an error object
	done    bool

	// One decoder for the stream's chunks, over src: json.Unmarshal would
	// set up its scanner and decode state anew for every chunk (a third of
	// a call's allocations); chunk is reused too, and is valid until the
	// next Recv.
	dec   *json.Decoder
	src   chunkSource
	fed   int64 // bytes given to dec so far
	chunk streamChunk
}

// errBadChunk is a data line that is not one chunk object.
var errBadChunk = errors.New("invalid stream chunk")

// chunkSource hands the decoder one data line at a time.
type chunkSource struct{ b []byte }

func (r *chunkSource) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// streamChunk is what a turn reads of a chat.completion.chunk.
type streamChunk struct {
	Choices []choice      `json:"choices"`
	Usage   *openai.Usage `json:"usage"`
}

type choice struct {
	Index int `json:"index"`
	Delta struct {
		Content   string            `json:"content"`
		ToolCalls []openai.ToolCall `json:"tool_calls"`
	} `json:"delta"`
	FinishReason string `json:"finish_reason"`
}

// openStream sends w streamed and returns the stream once the endpoint
// answered 2xx; otherwise the error classify makes of the answer.
func (o *OpenAI) openStream(ctx context.Context, w *openai.ChatCompletionRequest) (*chatStream, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	if err := appendRequest(buf, w); err != nil {
		bufPool.Put(buf)
		return nil, &Error{Message: fmt.Sprintf("encode the request: %v", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.endpoint, bytes.NewReader(buf.Bytes()))
	if err != nil {
		bufPool.Put(buf)
		return nil, &Error{Message: err.Error()}
	}
	req.Header["Content-Type"] = hdrJSON
	req.Header["Accept"] = hdrEventStream
	req.Header["Cache-Control"] = hdrNoCache
	req.Header["Connection"] = hdrKeepAlive
	if o.cfg.APIKey != "" {
		req.Header["Authorization"] = o.auth
	}
	resp, err := doer{o.cfg.HTTPClient}.Do(req)
	if err != nil {
		// The transport may still hold the body: it is not pooled again.
		return nil, classify(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		defer resp.Body.Close()
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if rerr != nil {
			return nil, classify(fmt.Errorf("error, reading response body: %w", rerr))
		}
		var er openai.ErrorResponse
		if json.Unmarshal(b, &er) == nil && er.Error != nil {
			er.Error.HTTPStatus, er.Error.HTTPStatusCode = resp.Status, resp.StatusCode
			return nil, classify(er.Error)
		}
		return nil, classify(&openai.RequestError{HTTPStatus: resp.Status, HTTPStatusCode: resp.StatusCode, Body: b})
	}
	r := readerPool.Get().(*bufio.Reader)
	r.Reset(resp.Body)
	return &chatStream{resp: resp, r: r, body: buf}, nil
}

// Close closes the response body and pools the buffers again.
func (s *chatStream) Close() {
	_ = s.resp.Body.Close()
	s.r.Reset(nil)
	readerPool.Put(s.r)
	if s.body.Cap() <= 1<<20 {
		bufPool.Put(s.body)
	}
}

// Recv returns the next chunk, or io.EOF after the last.
func (s *chatStream) Recv() (*streamChunk, error) {
	if s.done {
		return nil, io.EOF
	}
	for empty := 0; ; {
		line, err := s.readLine()
		if err != nil {
			if e := s.streamError(); e != nil {
				return nil, e
			}
			return nil, err
		}
		line = bytes.TrimSpace(line)
		data, isData := bytes.CutPrefix(line, []byte("data:"))
		if !isData {
			if len(s.nondata)+len(line) <= maxErrorBody {
				s.nondata = append(s.nondata, line...)
			}
			if empty++; empty > emptyLineLimit {
				return nil, openai.ErrTooManyEmptyStreamMessages
			}
			continue
		}
		data = bytes.TrimLeft(data, " \t\r\n")
		if bytes.HasPrefix(data, []byte(`{"error":`)) {
			s.nondata = append(s.nondata[:0], data...)
			if e := s.streamError(); e != nil {
				return nil, e
			}
			return nil, fmt.Errorf("invalid stream: an error event that does not decode: %.200s", data)
		}
		if string(data) == "[DONE]" {
			s.done = true
			return nil, io.EOF
		}
		return s.decode(data)
	}
}

// decode decodes one data line as a chunk, as strictly as json.Unmarshal:
// one JSON value and nothing after it.
func (s *chatStream) decode(data []byte) (*streamChunk, error) {
	// The old choices are zeroed: the decoders fill a reused element only
	// with the fields a chunk has.
	clear(s.chunk.Choices[:cap(s.chunk.Choices)])
	s.chunk = streamChunk{Choices: s.chunk.Choices[:0]}
	if decodeChunk(data, &s.chunk) {
		return &s.chunk, nil
	}
	clear(s.chunk.Choices[:cap(s.chunk.Choices)])
	s.chunk = streamChunk{Choices: s.chunk.Choices[:0]}
	if s.dec == nil {
		s.dec = json.NewDecoder(&s.src)
	}
	s.src.b = data
	s.fed += int64(len(data))
	if err := s.dec.Decode(&s.chunk); err != nil {
		if err == io.EOF {
			err = errors.New("empty data line")
		}
		// A data line is whole: its JSON ending early (io.ErrUnexpectedEOF
		// from the decoder) is bad JSON, not a cut connection.
		return nil, fmt.Errorf("%w: %w", errBadChunk, err)
	}
	if s.dec.InputOffset() != s.fed || len(s.src.b) > 0 {
		return nil, fmt.Errorf("%w: data after the JSON value in %.200q", errBadChunk, data)
	}
	return &s.chunk, nil
}

// streamError is the error object the stream carried instead of chunks, if
// it did.
func (s *chatStream) streamError() error {
	if len(s.nondata) == 0 {
		return nil
	}
	var er openai.ErrorResponse
	if json.Unmarshal(s.nondata, &er) != nil || er.Error == nil {
		return nil
	}
	return fmt.Errorf("error, %w", er.Error)
}

// readLine returns the next line, valid until the next call.
func (s *chatStream) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.line = append(s.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.r.ReadSlice('\n')
			s.line = append(s.line, line...)
		}
		line = s.line
	}
	if err == io.EOF && len(line) > 0 {
		err = nil // a last line without its newline
	}
	return line, err
}

// appendRequest writes w as JSON, the fields in go-openai's order and with
// its omissions, without reflection.
func appendRequest(buf *bytes.Buffer, w *openai.ChatCompletionRequest) error {
	b := buf.AvailableBuffer()
	b = append(b, `{"model":`...)
	b = jsonstr.Append(b, w.Model, false)
	b = append(b, `,"messages":[`...)
	for i, m := range w.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"role":`...)
		b = jsonstr.Append(b, m.Role, false)
		if m.Content != "" {
			b = append(b, `,"content":`...)
			b = jsonstr.Append(b, m.Content, false)
		}
		if len(m.ToolCalls) > 0 {
			b = append(b, `,"tool_calls":[`...)
			for j, c := range m.ToolCalls {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, '{')
				if c.ID != "" {
					b = append(b, `"id":`...)
					b = jsonstr.Append(b, c.ID, false)
					b = append(b, ',')
				}
				b = append(b, `"type":`...)
				b = jsonstr.Append(b, string(c.Type), false)
				b = append(b, `,"function":{`...)
				sep := false
				if c.Function.Name != "" {
					b = append(b, `"name":`...)
					b = jsonstr.Append(b, c.Function.Name, false)
					sep = true
				}
				if c.Function.Arguments != "" {
					if sep {
						b = append(b, ',')
					}
					b = append(b, `"arguments":`...)
					b = jsonstr.Append(b, c.Function.Arguments, false)
				}
				b = append(b, "}}"...)
			}
			b = append(b, ']')
		}
		if m.ToolCallID != "" {
			b = append(b, `,"tool_call_id":`...)
			b = jsonstr.Append(b, m.ToolCallID, false)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if w.MaxTokens != 0 {
		b = strconv.AppendInt(append(b, `,"max_tokens":`...), int64(w.MaxTokens), 10)
	}
	if w.MaxCompletionTokens != 0 {
		b = strconv.AppendInt(append(b, `,"max_completion_tokens":`...), int64(w.MaxCompletionTokens), 10)
	}
	if w.Temperature != 0 {
		b = appendFloat32(append(b, `,"temperature":`...), w.Temperature)
	}
	b = strconv.AppendBool(append(b, `,"stream":`...), w.Stream)
	if len(w.Tools) > 0 {
		b = append(b, `,"tools":[`...)
		for i, t := range w.Tools {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if f := t.Function; f != nil {
				b = append(b, `"function":{"name":`...)
				b = jsonstr.Append(b, f.Name, false)
				if f.Description != "" {
					b = append(b, `,"description":`...)
					b = jsonstr.Append(b, f.Description, false)
				}
				if f.Strict {
					b = append(b, `,"strict":true`...)
				}
				b = append(b, `,"parameters":`...)
				var err error
				if b, err = appendRaw(b, f.Parameters); err != nil {
					return fmt.Errorf("tool %q: parameters: %w", f.Name, err)
				}
				b = append(b, "},"...)
			}
			b = append(b, `"type":`...)
			b = jsonstr.Append(b, string(t.Type), false)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if w.StreamOptions != nil {
		b = strconv.AppendBool(append(b, `,"stream_options":{"include_usage":`...), w.StreamOptions.IncludeUsage)
		b = append(b, '}')
	}
	b = append(b, '}')
	buf.Write(b)
	return nil
}

// appendRaw appends a schema, compacted: a compactJSON as it is, anything
// else compacted here (wire sets a json.RawMessage only when it is not
// valid JSON, and this fails on it).
func appendRaw(b []byte, v any) ([]byte, error) {
	if c, ok := v.(compactJSON); ok {
		return append(b, c...), nil
	}
	raw, ok := v.(json.RawMessage)
	if !ok {
		enc, err := json.Marshal(v)
		if err != nil {
			return b, err
		}
		raw = enc
	}
	var c bytes.Buffer
	if err := json.Compact(&c, raw); err != nil {
		return b, err
	}
	return append(b, c.Bytes()...), nil
}

// appendFloat32 formats f as encoding/json does.
func appendFloat32(b []byte, f float32) []byte {
	abs := math.Abs(float64(f))
	format := byte('f')
	if abs != 0 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, float64(f), format, -1, 32)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
