package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// OpenAIConfig configures an adapter for an OpenAI-compatible endpoint.
type OpenAIConfig struct {
	BaseURL string // the API root, such as "https://api.openai.com/v1" or "http://127.0.0.1:11434/v1"
	Model   string
	APIKey  string // sent as a bearer token when not empty

	// HTTPClient defaults to a client without an overall timeout: a stream
	// lasts as long as the model writes, and ctx or Timeout bound it.
	HTTPClient *http.Client

	// MaxRetries is how many times a failed call is retried before any of
	// the reply was delivered: on 408, 429, 5xx, a connection failure or a
	// stream cut short. 0 means 3; negative means never.
	MaxRetries int
	// Backoff is the wait before the first retry, doubled for each further
	// one, with jitter; default 500ms. A Retry-After from the endpoint is
	// honoured instead.
	Backoff time.Duration
	// MaxBackoff caps the wait; a Retry-After longer than this ends the call
	// with the endpoint's error rather than blocking. Default 30s.
	MaxBackoff time.Duration
	// Timeout bounds one Generate call including retries; 0: ctx alone.
	Timeout time.Duration

	// MaxTokens and Temperature apply to requests that set none.
	MaxTokens   int
	Temperature *float32
}

// OpenAI is a Model backed by an OpenAI-compatible chat completions
// endpoint, streamed, with native tool calling. It is safe for concurrent use.
type OpenAI struct {
	cfg      OpenAIConfig
	client   *openai.Client
	endpoint string
}

var _ Model = (*OpenAI)(nil)

// NewOpenAI returns an adapter for the endpoint in cfg.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("llm: invalid base URL %q: expected http(s)://host[:port]/path, such as \"http://127.0.0.1:11434/v1\"", cfg.BaseURL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 3
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	oc.HTTPClient = hintingDoer{cfg.HTTPClient}
	return &OpenAI{cfg: cfg, client: openai.NewClientWithConfig(oc), endpoint: oc.BaseURL + "/chat/completions"}, nil
}

// Generate streams one reply. Text deltas are yielded as they arrive; tool
// calls are assembled from their streamed fragments and delivered whole in
// the final chunk. Failures before any chunk was yielded are retried; after
// that, an error ends the stream.
func (o *OpenAI) Generate(ctx context.Context, req *Request) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		parent := ctx
		if o.cfg.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, o.cfg.Timeout)
			defer cancel()
		}
		wreq, names := o.wire(req)
		for attempt := 1; ; attempt++ {
			var hint retryHint
			res, delivered, err := o.attempt(context.WithValue(ctx, hintKey{}, &hint), &wreq, names, yield)
			if err == nil {
				if res != nil {
					yield(Chunk{Final: res}, nil)
				}
				return
			}
			if ctx.Err() != nil {
				yield(Chunk{}, o.canceled(parent, attempt))
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				e = &Error{Message: err.Error()}
			}
			e.Endpoint, e.Attempts = o.endpoint, attempt
			if delivered || !e.Retryable || attempt > o.cfg.MaxRetries {
				yield(Chunk{}, e)
				return
			}
			wait := hint.after
			if wait == 0 {
				wait = o.backoff(attempt)
			}
			if wait > o.cfg.MaxBackoff {
				e.Message += fmt.Sprintf(" (the endpoint asks to retry after %v)", wait)
				yield(Chunk{}, e)
				return
			}
			if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
				yield(Chunk{}, e)
				return
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				yield(Chunk{}, o.canceled(parent, attempt))
				return
			}
		}
	}
}

// canceled is the error for a call ended by ctx: the caller's cancellation
// (which errors.Is finds), or the adapter's own Timeout.
func (o *OpenAI) canceled(parent context.Context, attempts int) error {
	if parent.Err() != nil {
		return fmt.Errorf("llm: %s: %w", o.endpoint, context.Cause(parent))
	}
	return &Error{
		Message:   fmt.Sprintf("no complete reply within the model timeout of %v", o.cfg.Timeout),
		Retryable: true, Endpoint: o.endpoint, Attempts: attempts,
	}
}

// backoff is the jittered wait before retry n (1-based): between half and all
// of Backoff·2^(n-1).
func (o *OpenAI) backoff(n int) time.Duration {
	d := o.cfg.Backoff << min(n-1, 20)
	if d <= 0 || d > o.cfg.MaxBackoff {
		d = o.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// reasoning reports model families whose API takes max_completion_tokens
// instead of max_tokens (go-openai refuses max_tokens for them).
func reasoning(model string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// emptySchema stands in for a tool without parameters: endpoints reject a
// null schema.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// wire builds the go-openai request. Tool schemas are sent exactly as given;
// tool names are made acceptable to the API (see toolNames).
func (o *OpenAI) wire(req *Request) (openai.ChatCompletionRequest, *toolNames) {
	names := newToolNames(req.Tools)
	w := openai.ChatCompletionRequest{
		Model:         o.cfg.Model,
		Messages:      make([]openai.ChatCompletionMessage, len(req.Messages)),
		Stream:        true,
		StreamOptions: &openai.StreamOptions{IncludeUsage: true},
	}
	for i, m := range req.Messages {
		wm := openai.ChatCompletionMessage{Role: string(m.Role), Content: m.Content, ToolCallID: m.ToolCallID}
		if len(m.ToolCalls) > 0 {
			wm.ToolCalls = make([]openai.ToolCall, len(m.ToolCalls))
			for j, c := range m.ToolCalls {
				wm.ToolCalls[j] = openai.ToolCall{ID: c.ID, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: names.wire(c.Name), Arguments: c.Arguments}}
			}
		}
		w.Messages[i] = wm
	}
	if len(req.Tools) > 0 {
		w.Tools = make([]openai.Tool, len(req.Tools))
		for i, t := range req.Tools {
			params := t.Parameters
			if len(params) == 0 {
				params = emptySchema
			}
			w.Tools[i] = openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: names.wire(t.Name), Description: t.Description, Parameters: params}}
		}
	}
	maxTokens := req.MaxTokens
	if maxTokens == 0 {
		maxTokens = o.cfg.MaxTokens
	}
	if reasoning(o.cfg.Model) {
		w.MaxCompletionTokens = maxTokens
	} else {
		w.MaxTokens = maxTokens
	}
	temp := req.Temperature
	if temp == nil {
		temp = o.cfg.Temperature
	}
	if temp != nil {
		w.Temperature = *temp
		if w.Temperature == 0 {
			// go-openai omits a zero temperature, which would leave the
			// endpoint's default; the smallest positive float is greedy too.
			w.Temperature = math.SmallestNonzeroFloat32
		}
	}
	return w, names
}

// attempt makes one streamed call. delivered reports whether any chunk
// reached the caller; a nil result with a nil error means the caller stopped.
func (o *OpenAI) attempt(ctx context.Context, wreq *openai.ChatCompletionRequest, names *toolNames, yield func(Chunk, error) bool) (res *Response, delivered bool, err error) {
	stream, err := o.client.CreateChatCompletionStream(ctx, *wreq)
	if err != nil {
		return nil, false, classify(err)
	}
	defer stream.Close()
	var (
		text    strings.Builder
		calls   toolCalls
		finish  string
		usage   Usage
		chunks  int
		choices int
	)
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, delivered, classifyStream(err)
		}
		chunks++
		if r.Usage != nil {
			usage = Usage{PromptTokens: r.Usage.PromptTokens, CompletionTokens: r.Usage.CompletionTokens, TotalTokens: r.Usage.TotalTokens}
		}
		for i := range r.Choices {
			c := &r.Choices[i]
			if c.Index != 0 {
				continue // we ask for one choice
			}
			choices++
			if c.Delta.Content != "" {
				text.WriteString(c.Delta.Content)
				if !yield(Chunk{Text: c.Delta.Content}, nil) {
					return nil, true, nil
				}
				delivered = true
			}
			for _, tc := range c.Delta.ToolCalls {
				if err := calls.add(tc); err != nil {
					return nil, delivered, err
				}
			}
			if c.FinishReason != "" {
				finish = string(c.FinishReason)
			}
		}
	}
	switch {
	case chunks == 0:
		return nil, delivered, &Error{Message: "the endpoint sent no chat completion chunks (is base_url an OpenAI-compatible API root, such as .../v1?)"}
	case finish == "":
		return nil, delivered, &Error{Message: fmt.Sprintf("the stream ended before the reply was complete (no finish_reason after %d chunks)", chunks), Retryable: true}
	}
	return &Response{
		Message:      Message{Role: RoleAssistant, Content: text.String(), ToolCalls: calls.done(names)},
		FinishReason: finish,
		Usage:        usage,
	}, delivered, nil
}

// maxToolCalls bounds the index a stream may use, so a garbage index cannot
// make us allocate without limit.
const maxToolCalls = 128

type partialCall struct {
	id, name string
	args     strings.Builder
}

// toolCalls assembles streamed tool call deltas by index.
type toolCalls []*partialCall

func (tc *toolCalls) add(d openai.ToolCall) error {
	calls := *tc
	var i int
	switch {
	case d.Index != nil:
		i = *d.Index
	case d.ID != "" && (len(calls) == 0 || calls[len(calls)-1].id != d.ID):
		// Some servers omit the index; a new id starts a new call.
		i = len(calls)
	default:
		i = len(calls) - 1
	}
	if i < 0 || i >= maxToolCalls {
		return &Error{Message: fmt.Sprintf("invalid stream: tool call index %d (expected 0 to %d)", i, maxToolCalls-1)}
	}
	for len(calls) <= i {
		calls = append(calls, &partialCall{})
	}
	p := calls[i]
	if d.ID != "" {
		p.id = d.ID
	}
	p.name += d.Function.Name
	p.args.WriteString(d.Function.Arguments)
	*tc = calls
	return nil
}

func (tc toolCalls) done(names *toolNames) []ToolCall {
	var out []ToolCall
	for i, p := range tc {
		if p.name == "" && p.args.Len() == 0 {
			continue // a gap in the indexes
		}
		id := p.id
		if id == "" {
			id = "call_" + strconv.Itoa(i)
		}
		out = append(out, ToolCall{ID: id, Name: names.local(p.name), Arguments: p.args.String()})
	}
	return out
}

// toolNames maps tool names to names the OpenAI API accepts
// (^[a-zA-Z0-9_-]{1,64}$: no dots, so "gnss.position" goes as
// "gnss_position") and the model's calls back. It is nil, and costs nothing,
// when every name is valid already.
type toolNames struct {
	toWire, fromWire map[string]string
}

func newToolNames(tools []ToolSpec) *toolNames {
	var n *toolNames
	for _, t := range tools {
		if validToolName(t.Name) {
			continue
		}
		if n == nil {
			n = &toolNames{toWire: map[string]string{}, fromWire: map[string]string{}}
			for _, t := range tools {
				if validToolName(t.Name) {
					n.fromWire[t.Name] = t.Name
				}
			}
		}
		base := sanitizeToolName(t.Name)
		w := base
		for i := 2; ; i++ {
			if _, taken := n.fromWire[w]; !taken {
				break
			}
			suffix := "_" + strconv.Itoa(i)
			w = base[:min(len(base), 64-len(suffix))] + suffix
		}
		n.toWire[t.Name], n.fromWire[w] = w, t.Name
	}
	return n
}

func (n *toolNames) wire(name string) string {
	if validToolName(name) {
		return name
	}
	if n != nil {
		if w, ok := n.toWire[name]; ok {
			return w
		}
	}
	return sanitizeToolName(name)
}

func (n *toolNames) local(name string) string {
	if n != nil {
		if l, ok := n.fromWire[name]; ok {
			return l
		}
	}
	return name
}

func validToolName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func sanitizeToolName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// retryable statuses: the request may succeed later.
func retryableStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// classify turns a failure to get a stream going into an *Error.
func classify(err error) error {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return &Error{Status: apiErr.HTTPStatusCode, Message: apiErr.Message, Retryable: retryableStatus(apiErr.HTTPStatusCode)}
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		msg := strings.TrimSpace(string(reqErr.Body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg == "" {
			msg = reqErr.HTTPStatus
		}
		return &Error{Status: reqErr.HTTPStatusCode, Message: msg, Retryable: retryableStatus(reqErr.HTTPStatusCode)}
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		// Connection refused, reset, DNS: the endpoint may come back.
		return &Error{Message: urlErr.Err.Error(), Retryable: true}
	}
	return &Error{Message: err.Error()}
}

// classifyStream turns a failure while reading the stream into an *Error.
func classifyStream(err error) error {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		// An error event inside the stream.
		return &Error{Status: apiErr.HTTPStatusCode, Message: apiErr.Message}
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr), errors.As(err, &typeErr), errors.Is(err, openai.ErrTooManyEmptyStreamMessages):
		return &Error{Message: fmt.Sprintf("invalid stream: %v", err)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Message: "the stream was cut off", Retryable: true}
	}
	// A broken connection mid-stream.
	return &Error{Message: fmt.Sprintf("reading the stream: %v", err), Retryable: true}
}

// retryHint carries the endpoint's Retry-After from the HTTP layer, which
// go-openai's errors do not expose, back to the retry loop.
type retryHint struct{ after time.Duration }

type hintKey struct{}

// hintingDoer records Retry-After of error responses into the request's hint.
type hintingDoer struct{ c *http.Client }

func (d hintingDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.c.Do(req)
	if err == nil && resp.StatusCode >= 400 {
		if h, ok := req.Context().Value(hintKey{}).(*retryHint); ok {
			h.after = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
	}
	return resp, err
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(min(s, 1<<30)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
