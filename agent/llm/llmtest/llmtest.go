// Package llmtest is an OpenAI-compatible HTTP server for tests: the protocol
// is real, the intelligence is scripted.
//
// A Server listens on 127.0.0.1 and speaks the real wire format of
// POST /v1/chat/completions — streamed server-sent events (data: {...} …
// data: [DONE]) with content deltas, tool_calls deltas split across chunks,
// finish_reason and usage, or whole non-streamed responses. What it answers
// is a script of Replies consumed in order, or a Responder for dynamic
// scripts. (For POST /v1/embeddings, use memory/embed/embedtest.) Replies
// can also be failures: an HTTP error with an OpenAI error body and
// Retry-After, garbage or truncated SSE, a delay, or a hang until the client
// gives up. A server can also play one that does not stream tool calls
// (Config.StreamsNoToolCalls). Every request is recorded, decoded, so tests
// assert what a client sent, and accepted connections are counted (Conns).
//
// In a test:
//
//	srv := llmtest.NewServer(t,
//		llmtest.Reply{Status: 429, RetryAfter: time.Second},
//		llmtest.Reply{ToolCalls: []llm.ToolCall{{Name: "clock", Arguments: "{}"}}},
//		llmtest.Reply{Text: "It is noon."},
//	)
//	model, _ := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL, Model: "any"})
package llmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/depai/depai/agent/llm"
)

// Reply is one scripted answer to a chat completion request.
type Reply struct {
	Text      string         // assistant content
	ToolCalls []llm.ToolCall // an ID is made up when empty
	// FinishReason defaults to "tool_calls" when there are tool calls, else "stop".
	FinishReason string
	// Usage defaults to a deterministic count of about one token per four
	// bytes of the request body and of the reply.
	Usage *llm.Usage

	// ChunkSize is how many bytes of text or tool arguments go in one SSE
	// chunk (split at rune boundaries); default 8.
	ChunkSize int
	// Interleave sends the tool calls' argument fragments round-robin, the
	// way some servers stream parallel calls, instead of one call after
	// another.
	Interleave bool

	Delay time.Duration // wait before answering (the client may give up first)

	// Status, when not 0 or 200, answers with that HTTP status and an
	// OpenAI error body carrying Error (default: the status text).
	Status     int
	Error      string
	RetryAfter time.Duration // sets Retry-After (whole seconds, rounded up) on an error reply

	// Raw, when set, is written verbatim as a 200 text/event-stream body
	// and the connection closed: garbage, truncated or hand-made SSE.
	Raw string
	// Truncate streams the content and tool call chunks, then closes the
	// connection without finish_reason, usage or [DONE].
	Truncate bool
	// Hang streams the content chunks (if any), then blocks until the client
	// goes away or the server closes.
	Hang bool
}

// Request is a chat completion request as the server received it.
type Request struct {
	Model        string
	Messages     []llm.Message
	Tools        []llm.ToolSpec
	Stream       bool
	IncludeUsage bool // stream_options.include_usage
	MaxTokens    int  // max_tokens, or max_completion_tokens
	Temperature  *float32
	Header       http.Header
	Body         []byte // the raw JSON body
	Err          error  // why the body is not a valid chat completion request, if it is not
}

// Config configures a Server.
type Config struct {
	// Replies are answered in order, one per chat completion request.
	Replies []Reply
	// Respond answers requests once Replies are used up. With neither left,
	// the server answers 500 with an error saying the script ran out.
	// Respond needs each request decoded; benchmarks that count allocations
	// should script replies with Push instead.
	Respond func(Request) Reply
	// APIKey, when set, is required as "Authorization: Bearer <key>";
	// requests without it get 401.
	APIKey string
	// StreamsNoToolCalls plays a server that supports tool calls only
	// without streaming: a streamed answer leaves the reply's tool calls
	// out (the stream ends with its text, if any, and its finish_reason),
	// and a reply with tool calls is not used up by a streamed request, so
	// that the client asking again with stream: false gets it.
	StreamsNoToolCalls bool
}

// Server is a running scripted endpoint.
type Server struct {
	// URL is the base URL for OpenAI clients: "http://127.0.0.1:PORT/v1".
	URL string

	cfg    Config
	srv    *http.Server
	ln     net.Listener
	closed chan struct{}
	once   sync.Once

	conns atomic.Int64 // connections accepted

	mu       sync.Mutex
	replies  []Reply
	requests []recorded
}

// NewServer starts a server with the scripted replies and stops it when the
// test ends.
func NewServer(t testing.TB, replies ...Reply) *Server {
	t.Helper()
	s, err := Start(Config{Replies: replies})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server on 127.0.0.1 for use outside tests (benchmarks,
// examples, the CLI's demos); the caller must Close it.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("llmtest: listen: %w", err)
	}
	s := &Server{
		URL:     "http://" + ln.Addr().String() + "/v1",
		cfg:     cfg,
		ln:      ln,
		closed:  make(chan struct{}),
		replies: append([]Reply(nil), cfg.Replies...),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("llmtest: no route for %s %s", r.Method, r.URL.Path), 0)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: func(_ net.Conn, cs http.ConnState) {
		if cs == http.StateNew {
			s.conns.Add(1)
		}
	}}
	go func() { _ = s.srv.Serve(ln) }() // returns ErrServerClosed on Close
	return s, nil
}

// Close stops the server, ending any hanging replies.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.srv.Close()
	})
}

// Push appends replies to the script.
func (s *Server) Push(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, replies...)
}

// Requests returns the chat completion requests received so far, in order,
// decoded. A request the server could answer but not fully decode has Err set.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	recs := append([]recorded(nil), s.requests...)
	s.mu.Unlock()
	out := make([]Request, len(recs))
	for i, rec := range recs {
		out[i], out[i].Err = rec.decode()
	}
	return out
}

// Conns is the number of TCP connections the server has accepted: a client
// that pools its connections opens few.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// Remaining is the number of scripted replies not yet used.
func (s *Server) Remaining() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.replies)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.APIKey == "" || r.Header.Get("Authorization") == "Bearer "+s.cfg.APIKey {
		return true
	}
	writeError(w, http.StatusUnauthorized, "Incorrect API key provided.", 0)
	return false
}

// wireMessage is a chat message on the wire.
type wireMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []wireToolCall  `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type wireToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type wireRequest struct {
	Model    string        `json:"model"`
	Messages []wireMessage `json:"messages"`
	Tools    []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           int      `json:"max_tokens"`
	MaxCompletionTokens int      `json:"max_completion_tokens"`
	Temperature         *float32 `json:"temperature"`
}

// content reads a message's content: a string, or an array of parts whose
// text parts are joined.
func content(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content is neither a string nor an array of parts")
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// probe is what the server needs to answer a request. The rest is decoded
// only when a test asks (Requests, Respond), which keeps the server cheap
// enough to sit inside allocation benchmarks.
type probe struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Messages []struct{} `json:"messages"`
}

// recorded is one request as received.
type recorded struct {
	body   []byte
	header http.Header
	probe  probe
}

// decode turns a recorded body into a Request.
func (rec recorded) decode() (Request, error) {
	req := Request{
		Model:        rec.probe.Model,
		Stream:       rec.probe.Stream,
		IncludeUsage: rec.probe.StreamOptions.IncludeUsage,
		Header:       rec.header,
		Body:         rec.body,
	}
	var wr wireRequest
	if err := json.Unmarshal(rec.body, &wr); err != nil {
		return req, fmt.Errorf("invalid chat completion request: %v", err)
	}
	req.MaxTokens, req.Temperature = wr.MaxTokens, wr.Temperature
	if req.MaxTokens == 0 {
		req.MaxTokens = wr.MaxCompletionTokens
	}
	for i, m := range wr.Messages {
		text, err := content(m.Content)
		if err != nil {
			return req, fmt.Errorf("messages[%d]: %v", i, err)
		}
		msg := llm.Message{Role: llm.Role(m.Role), Content: text, ToolCallID: m.ToolCallID}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
		req.Messages = append(req.Messages, msg)
	}
	for i, t := range wr.Tools {
		if t.Type != "function" {
			return req, fmt.Errorf("tools[%d].type: %q is not supported, expected \"function\"", i, t.Type)
		}
		req.Tools = append(req.Tools, llm.ToolSpec{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters})
	}
	return req, nil
}

func readBody(r *http.Request) ([]byte, error) {
	const limit = 32 << 20
	if r.ContentLength > limit {
		return nil, fmt.Errorf("body of %d bytes is over the limit of %d", r.ContentLength, limit)
	}
	if r.ContentLength > 0 {
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, fmt.Errorf("reading body: %v", err)
		}
		return body, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("reading body: %v", err)
	}
	return body, nil
}

// errNoReply means the script ran out.
var errNoReply = errors.New("no reply left")

// next records a request and picks its reply.
func (s *Server) next(rec recorded) (Reply, error) {
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	n := len(s.requests)
	if len(s.replies) > 0 {
		r := s.replies[0]
		if s.cfg.StreamsNoToolCalls && rec.probe.Stream && len(r.ToolCalls) > 0 {
			// Keep it for the non-streamed request that gets the calls.
			s.mu.Unlock()
			r.ToolCalls = nil
			return r, nil
		}
		s.replies = s.replies[1:]
		s.mu.Unlock()
		return r, nil
	}
	respond := s.cfg.Respond
	s.mu.Unlock()
	if respond == nil {
		return Reply{}, fmt.Errorf("llmtest: the script has no reply left for request %d: %w", n, errNoReply)
	}
	req, err := rec.decode()
	if err != nil {
		return Reply{}, err
	}
	return respond(req), nil
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), 0)
		return
	}
	rec := recorded{body: body, header: r.Header}
	if err := json.Unmarshal(body, &rec.probe); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON body: %v", err), 0)
		return
	}
	if len(rec.probe.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "'messages' must contain at least one message", 0)
		return
	}
	reply, err := s.next(rec)
	if s.cfg.StreamsNoToolCalls && rec.probe.Stream {
		reply.ToolCalls = nil // also from a Respond function
	}
	switch {
	case errors.Is(err, errNoReply):
		writeError(w, http.StatusInternalServerError, err.Error(), 0)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error(), 0)
		return
	}
	if reply.Delay > 0 && !s.wait(r.Context(), reply.Delay) {
		return
	}
	switch {
	case reply.Status != 0 && reply.Status != http.StatusOK:
		msg := reply.Error
		if msg == "" {
			msg = http.StatusText(reply.Status)
		}
		writeError(w, reply.Status, msg, reply.RetryAfter)
	case reply.Raw != "":
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, reply.Raw)
	case rec.probe.Stream:
		s.stream(w, r, rec, reply)
	default:
		s.whole(w, rec, reply)
	}
}

// wait sleeps for d unless the client goes away or the server closes first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closed:
	}
	return false
}

// writeError writes an OpenAI error body.
func writeError(w http.ResponseWriter, status int, msg string, retryAfter time.Duration) {
	typ := "invalid_request_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status == http.StatusUnauthorized:
		typ = "authentication_error"
	case status >= 500:
		typ = "server_error"
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil},
	})
}

func (reply Reply) calls() []llm.ToolCall {
	calls := make([]llm.ToolCall, len(reply.ToolCalls))
	for i, c := range reply.ToolCalls {
		if c.ID == "" {
			c.ID = fmt.Sprintf("call_%d", i+1)
		}
		calls[i] = c
	}
	return calls
}

func (reply Reply) finish() string {
	switch {
	case reply.FinishReason != "":
		return reply.FinishReason
	case len(reply.ToolCalls) > 0:
		return "tool_calls"
	}
	return "stop"
}

func (reply Reply) usage(rec recorded) llm.Usage {
	if reply.Usage != nil {
		return *reply.Usage
	}
	in := len(rec.body)
	out := len(reply.Text)
	for _, c := range reply.ToolCalls {
		out += len(c.Name) + len(c.Arguments)
	}
	u := llm.Usage{PromptTokens: max(1, in/4), CompletionTokens: max(1, out/4)}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// whole answers a non-streamed request.
func (s *Server) whole(w http.ResponseWriter, rec recorded, reply Reply) {
	msg := map[string]any{"role": "assistant", "content": reply.Text}
	if reply.Text == "" && len(reply.ToolCalls) > 0 {
		msg["content"] = nil
	}
	if len(reply.ToolCalls) > 0 {
		calls := make([]wireToolCall, 0, len(reply.ToolCalls))
		for _, c := range reply.calls() {
			var wc wireToolCall
			wc.ID, wc.Type = c.ID, "function"
			wc.Function.Name, wc.Function.Arguments = c.Name, c.Arguments
			calls = append(calls, wc)
		}
		msg["tool_calls"] = calls
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":      "chatcmpl-llmtest",
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   rec.probe.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": reply.finish()}},
		"usage":   reply.usage(rec),
	})
}

// split cuts s into pieces of at most n bytes at rune boundaries.
func split(s string, n int) []string {
	var out []string
	for len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		if i == 0 {
			i = n
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

// stream answers a streamed request with SSE chunks. The JSON is written by
// hand into one buffer so that the server adds few allocations to the
// client's in benchmarks; TestStreamWireFormat decodes every chunk.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, rec recorded, reply Reply) {
	flusher, _ := w.(http.Flusher)
	h := w.Header()
	h["Content-Type"] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"no-cache"}
	w.WriteHeader(http.StatusOK)

	head := make([]byte, 0, 128)
	head = append(head, `data: {"id":"chatcmpl-llmtest","object":"chat.completion.chunk","created":`...)
	head = strconv.AppendInt(head, time.Now().Unix(), 10)
	head = append(head, `,"model":`...)
	head = appendString(head, rec.probe.Model)
	buf := make([]byte, 0, 512)
	// send writes one chunk whose choice has the delta (a JSON object) and,
	// when not empty, a finish reason.
	send := func(delta []byte, finish string) bool {
		buf = append(buf[:0], head...)
		buf = append(buf, `,"choices":[{"index":0,"delta":`...)
		buf = append(buf, delta...)
		buf = append(buf, `,"finish_reason":`...)
		if finish == "" {
			buf = append(buf, "null"...)
		} else {
			buf = appendString(buf, finish)
		}
		buf = append(buf, "}]}\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	size := reply.ChunkSize
	if size <= 0 {
		size = 8
	}
	d := make([]byte, 0, 256)
	if !send(append(d[:0], `{"role":"assistant","content":""}`...), "") {
		return
	}
	for _, piece := range split(reply.Text, size) {
		d = append(d[:0], `{"content":`...)
		d = appendString(d, piece)
		if !send(append(d, '}'), "") {
			return
		}
	}
	if reply.Hang {
		s.wait(r.Context(), 24*time.Hour)
		return
	}
	for _, td := range toolDeltas(reply.calls(), size, reply.Interleave) {
		d = append(d[:0], `{"tool_calls":[{"index":`...)
		d = strconv.AppendInt(d, int64(td.index), 10)
		if td.first {
			d = append(d, `,"id":`...)
			d = appendString(d, td.call.ID)
			d = append(d, `,"type":"function","function":{"name":`...)
			d = appendString(d, td.call.Name)
			d = append(d, `,"arguments":""}}]}`...)
		} else {
			d = append(d, `,"function":{"arguments":`...)
			d = appendString(d, td.args)
			d = append(d, `}}]}`...)
		}
		if !send(d, "") {
			return
		}
	}
	if reply.Truncate {
		return
	}
	if !send(append(d[:0], "{}"...), reply.finish()) {
		return
	}
	if rec.probe.StreamOptions.IncludeUsage {
		u := reply.usage(rec)
		buf = append(buf[:0], head...)
		buf = append(buf, `,"choices":[],"usage":{"prompt_tokens":`...)
		buf = strconv.AppendInt(buf, int64(u.PromptTokens), 10)
		buf = append(buf, `,"completion_tokens":`...)
		buf = strconv.AppendInt(buf, int64(u.CompletionTokens), 10)
		buf = append(buf, `,"total_tokens":`...)
		buf = strconv.AppendInt(buf, int64(u.TotalTokens), 10)
		buf = append(buf, "}}\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// toolDelta is one streamed piece of a tool call: the first names it, the
// rest carry argument fragments.
type toolDelta struct {
	index int
	first bool
	call  llm.ToolCall
	args  string
}

// toolDeltas splits tool calls into the deltas a server streams, one call
// after another or, interleaved, round-robin.
func toolDeltas(calls []llm.ToolCall, size int, interleave bool) []toolDelta {
	perCall := make([][]toolDelta, len(calls))
	n := 0
	for i, c := range calls {
		ds := []toolDelta{{index: i, first: true, call: c}}
		for _, frag := range split(c.Arguments, size) {
			ds = append(ds, toolDelta{index: i, args: frag})
		}
		perCall[i] = ds
		n += len(ds)
	}
	out := make([]toolDelta, 0, n)
	if !interleave {
		for _, ds := range perCall {
			out = append(out, ds...)
		}
		return out
	}
	for k := 0; len(out) < n; k++ {
		for _, ds := range perCall {
			if k < len(ds) {
				out = append(out, ds[k])
			}
		}
	}
	return out
}
