// Package llmtest is an OpenAI-compatible HTTP server for tests: the protocol
// is real, the intelligence is scripted.
//
// A Server listens on 127.0.0.1 and speaks the real wire format of
// POST /v1/chat/completions — streamed server-sent events (data: {...} …
// data: [DONE]) with content deltas, tool_calls deltas split across chunks,
// finish_reason and usage, or whole non-streamed responses — and of
// POST /v1/embeddings, with deterministic vectors. What it answers is a script
// of Replies consumed in order, or a Responder for dynamic scripts. Replies
// can also be failures: an HTTP error with an OpenAI error body and
// Retry-After, garbage or truncated SSE, a delay, or a hang until the client
// gives up. Every request is recorded, decoded, so tests assert what a client
// sent.
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
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
	// bytes of the request's messages and the reply.
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
}

// EmbeddingRequest is an embeddings request as the server received it.
type EmbeddingRequest struct {
	Model      string
	Input      []string
	Dimensions int
	Header     http.Header
}

// Config configures a Server.
type Config struct {
	// Replies are answered in order, one per chat completion request.
	Replies []Reply
	// Respond answers requests once Replies are used up. With neither left,
	// the server answers 500 with an error saying the script ran out.
	Respond func(Request) Reply
	// EmbeddingDims is the length of embedding vectors unless a request
	// asks for dimensions; default 384.
	EmbeddingDims int
	// APIKey, when set, is required as "Authorization: Bearer <key>";
	// requests without it get 401.
	APIKey string
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

	mu       sync.Mutex
	replies  []Reply
	requests []Request
	embeds   []EmbeddingRequest
	served   int
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
	if cfg.EmbeddingDims <= 0 {
		cfg.EmbeddingDims = 384
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
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("llmtest: no route for %s %s", r.Method, r.URL.Path), 0)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
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

// Requests returns the chat completion requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Embeddings returns the embeddings requests received so far, in order.
func (s *Server) Embeddings() []EmbeddingRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]EmbeddingRequest(nil), s.embeds...)
}

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

func decodeRequest(r *http.Request) (Request, error) {
	body, err := readBody(r)
	if err != nil {
		return Request{}, err
	}
	var wr wireRequest
	if err := json.Unmarshal(body, &wr); err != nil {
		return Request{}, fmt.Errorf("invalid JSON body: %v", err)
	}
	if len(wr.Messages) == 0 {
		return Request{}, errors.New("'messages' must contain at least one message")
	}
	req := Request{
		Model:       wr.Model,
		Stream:      wr.Stream,
		MaxTokens:   wr.MaxTokens,
		Temperature: wr.Temperature,
		Header:      r.Header.Clone(),
		Body:        body,
	}
	if req.MaxTokens == 0 {
		req.MaxTokens = wr.MaxCompletionTokens
	}
	if wr.StreamOptions != nil {
		req.IncludeUsage = wr.StreamOptions.IncludeUsage
	}
	for i, m := range wr.Messages {
		text, err := content(m.Content)
		if err != nil {
			return Request{}, fmt.Errorf("messages[%d]: %v", i, err)
		}
		msg := llm.Message{Role: llm.Role(m.Role), Content: text, ToolCallID: m.ToolCallID}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
		req.Messages = append(req.Messages, msg)
	}
	for i, t := range wr.Tools {
		if t.Type != "function" {
			return Request{}, fmt.Errorf("tools[%d].type: %q is not supported, expected \"function\"", i, t.Type)
		}
		req.Tools = append(req.Tools, llm.ToolSpec{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters})
	}
	return req, nil
}

func readBody(r *http.Request) ([]byte, error) {
	const max = 32 << 20
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, max))
	if err != nil {
		return nil, fmt.Errorf("reading body: %v", err)
	}
	return body, nil
}

// next picks the reply for a request.
func (s *Server) next(req Request) (Reply, bool) {
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.served++
	if len(s.replies) > 0 {
		r := s.replies[0]
		s.replies = s.replies[1:]
		s.mu.Unlock()
		return r, true
	}
	respond := s.cfg.Respond
	s.mu.Unlock()
	if respond == nil {
		return Reply{}, false
	}
	return respond(req), true
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	req, err := decodeRequest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), 0)
		return
	}
	reply, ok := s.next(req)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("llmtest: the script has no reply left for request %d", len(s.Requests())), 0)
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
	case req.Stream:
		s.stream(w, r, req, reply)
	default:
		s.whole(w, req, reply)
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

func (reply Reply) usage(req Request) llm.Usage {
	if reply.Usage != nil {
		return *reply.Usage
	}
	in := 0
	for _, m := range req.Messages {
		in += len(m.Content) + 4
		for _, c := range m.ToolCalls {
			in += len(c.Name) + len(c.Arguments)
		}
	}
	out := len(reply.Text)
	for _, c := range reply.ToolCalls {
		out += len(c.Name) + len(c.Arguments)
	}
	u := llm.Usage{PromptTokens: max(1, in/4), CompletionTokens: max(1, out/4)}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// whole answers a non-streamed request.
func (s *Server) whole(w http.ResponseWriter, req Request, reply Reply) {
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
		"model":   req.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": reply.finish()}},
		"usage":   reply.usage(req),
	})
}

// chunk is one streamed chat.completion.chunk.
type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *llm.Usage    `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

type delta struct {
	Role      string         `json:"role,omitempty"`
	Content   *string        `json:"content,omitempty"`
	ToolCalls []wireToolCall `json:"tool_calls,omitempty"`
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

// stream answers a streamed request with SSE chunks.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, req Request, reply Reply) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	base := chunk{ID: "chatcmpl-llmtest", Object: "chat.completion.chunk", Created: time.Now().Unix(), Model: req.Model}
	send := func(c chunk) bool {
		b, err := json.Marshal(c)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	withDelta := func(d delta) chunk {
		c := base
		c.Choices = []chunkChoice{{Delta: d}}
		return c
	}
	size := reply.ChunkSize
	if size <= 0 {
		size = 8
	}
	empty := ""
	if !send(withDelta(delta{Role: "assistant", Content: &empty})) {
		return
	}
	for _, piece := range split(reply.Text, size) {
		if !send(withDelta(delta{Content: &piece})) {
			return
		}
	}
	if reply.Hang {
		s.wait(r.Context(), 24*time.Hour)
		return
	}
	for _, d := range toolDeltas(reply.calls(), size, reply.Interleave) {
		if !send(withDelta(delta{ToolCalls: []wireToolCall{d}})) {
			return
		}
	}
	if reply.Truncate {
		return
	}
	finish := reply.finish()
	end := base
	end.Choices = []chunkChoice{{Delta: delta{}, FinishReason: &finish}}
	if !send(end) {
		return
	}
	if req.IncludeUsage {
		u := reply.usage(req)
		last := base
		last.Choices = []chunkChoice{}
		last.Usage = &u
		if !send(last) {
			return
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// toolDeltas splits tool calls into the deltas a server streams: the first
// names the call (index, id, type, name), the rest carry argument fragments.
func toolDeltas(calls []llm.ToolCall, size int, interleave bool) []wireToolCall {
	perCall := make([][]wireToolCall, len(calls))
	for i, c := range calls {
		idx := i
		var first wireToolCall
		first.Index, first.ID, first.Type = &idx, c.ID, "function"
		first.Function.Name = c.Name
		ds := []wireToolCall{first}
		for _, frag := range split(c.Arguments, size) {
			var d wireToolCall
			d.Index = &idx
			d.Function.Arguments = frag
			ds = append(ds, d)
		}
		perCall[i] = ds
	}
	var out []wireToolCall
	if !interleave {
		for _, ds := range perCall {
			out = append(out, ds...)
		}
		return out
	}
	for k := 0; ; k++ {
		added := false
		for _, ds := range perCall {
			if k < len(ds) {
				out = append(out, ds[k])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// embeddings answers POST /v1/embeddings with a unit vector per input derived
// from a hash of its text: equal texts get equal vectors, different texts
// nearly orthogonal ones.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), 0)
		return
	}
	var wr struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		Dimensions     int             `json:"dimensions"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if err := json.Unmarshal(body, &wr); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON body: %v", err), 0)
		return
	}
	var inputs []string
	var one string
	if err := json.Unmarshal(wr.Input, &one); err == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(wr.Input, &inputs); err != nil || len(inputs) == 0 {
		writeError(w, http.StatusBadRequest, "'input' must be a string or a non-empty array of strings", 0)
		return
	}
	dims := s.cfg.EmbeddingDims
	if wr.Dimensions > 0 {
		dims = wr.Dimensions
	}
	s.mu.Lock()
	s.embeds = append(s.embeds, EmbeddingRequest{Model: wr.Model, Input: inputs, Dimensions: wr.Dimensions, Header: r.Header.Clone()})
	s.mu.Unlock()

	data := make([]map[string]any, len(inputs))
	tokens := 0
	for i, text := range inputs {
		v := Vector(text, dims)
		var emb any = v
		if wr.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
		tokens += max(1, len(text)/4)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data":   data,
		"model":  wr.Model,
		"usage":  map[string]int{"prompt_tokens": tokens, "total_tokens": tokens},
	})
}

// Vector is the embedding the server returns for text: a unit vector of dims
// float32s seeded by the SHA-256 of the text.
func Vector(text string, dims int) []float32 {
	sum := sha256.Sum256([]byte(text))
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		x := rng.NormFloat64()
		v[i] = float32(x)
		norm += x * x
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] = float32(float64(v[i]) / norm)
	}
	return v
}
