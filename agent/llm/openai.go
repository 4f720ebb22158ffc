package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/depai/depai/internal/httpretry"
)

// Defaults of an OpenAIConfig.
const (
	DefaultTimeout          = 60 * time.Second
	DefaultFirstByteTimeout = 15 * time.Second
	// DefaultMaxIdleConnsPerHost is how many idle connections the default
	// transport keeps to the endpoint: enough that many concurrent turns
	// reuse connections instead of opening one each (Go's default keeps 2).
	DefaultMaxIdleConnsPerHost = 64
)

// OpenAIConfig configures an adapter for an OpenAI-compatible endpoint.
type OpenAIConfig struct {
	BaseURL string // the API root, such as "https://api.openai.com/v1" or "http://127.0.0.1:11434/v1"
	Model   string
	APIKey  string // sent as a bearer token when not empty

	// HTTPClient defaults to a client of the adapter's own pooled transport
	// (keep-alive, DefaultMaxIdleConnsPerHost idle connections) without an
	// overall timeout: a stream lasts as long as the model writes, and ctx,
	// Timeout and FirstByteTimeout bound it.
	HTTPClient *http.Client

	// NoStream sends every request with stream: false, for servers that do
	// not stream tool calls. Without it the adapter streams, and falls back
	// to a non-streamed request by itself when a stream ends with neither
	// text nor tool calls.
	NoStream bool

	// MaxRetries is how many times a failed call is retried before any of
	// the reply was delivered: on 408, 429, 5xx, a connection failure or a
	// stream cut short. 0 means 3; negative means never. Timeouts are not
	// retried: a hung endpoint is reported at once.
	MaxRetries int
	// Backoff is the wait before the first retry, doubled for each further
	// one, with jitter; default 500ms. A Retry-After from the endpoint is
	// honoured instead.
	Backoff time.Duration
	// MaxBackoff caps the wait; a Retry-After longer than this ends the call
	// with the endpoint's error rather than blocking. Default 30s.
	MaxBackoff time.Duration
	// Timeout bounds one Generate call including retries; 0:
	// DefaultTimeout; negative: ctx alone.
	Timeout time.Duration
	// FirstByteTimeout bounds the wait for the response of a streamed
	// request (its status and headers); 0: DefaultFirstByteTimeout;
	// negative: Timeout alone. A non-streamed reply arrives only when it is
	// whole, so only Timeout bounds it.
	FirstByteTimeout time.Duration

	// MaxTokens and Temperature apply to requests that set none.
	MaxTokens   int
	Temperature *float32

	// Logger gets an Info line when the adapter falls back from streaming;
	// nil: no logs.
	Logger *slog.Logger
}

// OpenAI is a Model backed by an OpenAI-compatible chat completions
// endpoint, streamed (or not, see OpenAIConfig.NoStream), with native tool
// calling. It is safe for concurrent use.
type OpenAI struct {
	cfg      OpenAIConfig
	own      *http.Transport // the pooled transport it made; nil: the caller's HTTPClient
	client   *openai.Client
	endpoint string
	hint404  string   // appended to a 404's message: a base URL without /v1
	auth     []string // the Authorization header's value, when there is a key
	log      *slog.Logger
	// noStream is set once a streamed reply came back empty and the same
	// request without streaming did not: this endpoint does not stream
	// tool calls, so later calls skip the streamed attempt.
	noStream atomic.Bool
	// names is the last tool list's name mapping: an agent offers the same
	// tools call after call, and building the maps each time cost a dozen
	// allocations a call. A toolNames is never written once built.
	names atomic.Pointer[namedTools]
}

// namedTools is a tool list as last offered, its name mapping and its wire
// form. None of it is written once built: requests share wire.
type namedTools struct {
	tools []ToolSpec
	names *toolNames
	wire  []openai.Tool
}

// toolNames returns the name mapping and the wire form of tools, reusing
// the last ones when the tools are the same (names, descriptions and
// schemas): an agent offers the same tools on every call, and their wire
// form was three allocations a call.
func (o *OpenAI) toolNames(tools []ToolSpec) (*toolNames, []openai.Tool) {
	if last := o.names.Load(); last != nil && slices.EqualFunc(last.tools, tools, func(a, b ToolSpec) bool {
		return a.Name == b.Name && a.Description == b.Description && bytes.Equal(a.Parameters, b.Parameters)
	}) {
		return last.names, last.wire
	}
	n := newToolNames(tools)
	list := make([]ToolSpec, len(tools))
	for i, t := range tools {
		list[i] = ToolSpec{Name: t.Name, Description: t.Description, Parameters: slices.Clone(t.Parameters)}
	}
	var wire []openai.Tool
	if len(list) > 0 {
		wire = make([]openai.Tool, len(list))
		for i, t := range list {
			wire[i] = openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: n.wire(t.Name), Description: t.Description, Parameters: wireSchema(t.Parameters)}}
		}
	}
	o.names.Store(&namedTools{tools: list, names: n, wire: wire})
	return n, wire
}

var _ Model = (*OpenAI)(nil)

// NewOpenAI returns an adapter for the endpoint in cfg.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("llm: invalid base URL %q: expected http(s)://host[:port]/path, such as \"http://127.0.0.1:11434/v1\"", cfg.BaseURL)
	}
	var own *http.Transport
	if cfg.HTTPClient == nil {
		own = newTransport()
		cfg.HTTPClient = &http.Client{Transport: own}
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
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.FirstByteTimeout == 0 {
		cfg.FirstByteTimeout = DefaultFirstByteTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	oc := openai.DefaultConfig(cfg.APIKey)
	oc.BaseURL = base
	oc.HTTPClient = doer{cfg.HTTPClient}
	o := &OpenAI{cfg: cfg, client: openai.NewClientWithConfig(oc), endpoint: base + "/chat/completions", log: log, own: own}
	if cfg.APIKey != "" {
		o.auth = []string{"Bearer " + cfg.APIKey}[:1:1]
	}
	if !strings.Contains(u.Path+"/", "/v1/") {
		o.hint404 = fmt.Sprintf(" (did you mean %s/v1? OpenAI-compatible servers serve /v1/chat/completions)", base)
	}
	return o, nil
}

// Close closes the idle connections of the transport the adapter made (a
// caller's HTTPClient is the caller's to close): an agent that closed left
// them open, with two goroutines each, for as long as the process lived.
// A call after Close opens new ones.
func (o *OpenAI) Close() error {
	if o.own != nil {
		o.own.CloseIdleConnections()
	}
	return nil
}

// newTransport is a pooled transport for one adapter: Go's defaults (proxy
// from the environment, HTTP/2, dial and TLS timeouts) with enough idle
// connections kept for concurrent turns.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * DefaultMaxIdleConnsPerHost
	t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	return t
}

// Generate streams one reply. Text deltas are yielded as they arrive; tool
// calls are assembled from their streamed fragments and delivered whole in
// the final chunk. A non-streamed reply is yielded as one text chunk and the
// final chunk. Failures before any chunk was yielded are retried; after
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
		stream := !o.cfg.NoStream && !o.noStream.Load()
		fellBack := false
		for attempt := 1; ; attempt++ {
			st := &attemptState{stream: stream}
			if stream {
				st.firstByte = o.cfg.FirstByteTimeout
			}
			actx := context.WithValue(ctx, stateKey{}, st)
			var (
				res       *Response
				delivered bool
				err       error
			)
			if stream {
				res, delivered, err = o.streamed(actx, &wreq, names, st, yield)
			} else {
				res, err = o.whole(actx, &wreq, names)
			}
			if err == nil {
				switch {
				case res == nil: // the caller stopped
					return
				case !res.Message.Empty():
					if fellBack && !o.noStream.Swap(true) {
						o.log.Info("llm: the endpoint answered without streaming what its stream left out; not streaming to it from now on (set model.stream: false to say so in the config)",
							"endpoint", o.endpoint, "model", o.cfg.Model)
					}
					if !stream && res.Message.Content != "" && !yield(Chunk{Text: res.Message.Content}, nil) {
						return
					}
					yield(Chunk{Final: res}, nil)
					return
				case stream:
					// Servers that cannot stream tool calls end the stream
					// empty; the same request without streaming gets them.
					o.log.Info("llm: the stream ended with neither text nor tool calls; asking again without streaming",
						"endpoint", o.endpoint, "model", o.cfg.Model, "finish_reason", res.FinishReason)
					stream, fellBack = false, true
					attempt-- // the fallback is not a retry
					continue
				}
				yield(Chunk{}, &Error{Kind: ErrEmpty, Endpoint: o.endpoint, Attempts: attempt,
					Message: fmt.Sprintf("the endpoint answered with neither text nor tool calls (finish_reason %q)", res.FinishReason)})
				return
			}
			if parent.Err() != nil {
				yield(Chunk{}, fmt.Errorf("llm: %s: %w", o.endpoint, context.Cause(parent)))
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				e = &Error{Message: err.Error()}
			}
			switch {
			case st.timedOut.Load():
				e = &Error{Kind: ErrTimeout, Retryable: true,
					Message: fmt.Sprintf("no response within the first-byte timeout of %v (the endpoint accepted the connection but sent nothing; is it overloaded or hung?)", o.cfg.FirstByteTimeout)}
			case ctx.Err() != nil:
				e = &Error{Kind: ErrTimeout, Retryable: true,
					Message: fmt.Sprintf("no complete reply within the model timeout of %v", o.cfg.Timeout)}
			case e.Status == http.StatusNotFound:
				e.Message += o.hint404
			}
			e.Endpoint, e.Attempts = o.endpoint, attempt
			if e.Kind == ErrTimeout || delivered || !e.Retryable || attempt > o.cfg.MaxRetries {
				yield(Chunk{}, e)
				return
			}
			wait, asked := st.retryAfter, st.retryAfterSet
			if !asked {
				wait = httpretry.Backoff(o.cfg.Backoff, o.cfg.MaxBackoff, attempt)
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
				if parent.Err() != nil {
					yield(Chunk{}, fmt.Errorf("llm: %s: %w", o.endpoint, context.Cause(parent)))
					return
				}
				yield(Chunk{}, &Error{Kind: ErrTimeout, Retryable: true, Endpoint: o.endpoint, Attempts: attempt,
					Message: fmt.Sprintf("no complete reply within the model timeout of %v (last error: %s)", o.cfg.Timeout, e.Message)})
				return
			}
		}
	}
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

// compactJSON is a tool's schema compacted once, when its tool list was
// first offered, and written as it is from then on: compacting every
// schema on every call was a tenth of the client's own CPU a turn.
type compactJSON []byte

// MarshalJSON is the schema (for go-openai, on the non-streamed path).
func (c compactJSON) MarshalJSON() ([]byte, error) { return c, nil }

// wireSchema is a tool's schema as requests send it: compacted, or as
// given when it is not valid JSON, so that encoding the request fails as
// it did before.
func wireSchema(params json.RawMessage) any {
	if len(params) == 0 {
		return compactJSON(emptySchema)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, params); err != nil {
		return params
	}
	return compactJSON(c.Bytes())
}

// includeUsage asks a stream for its token counts; every request shares
// it, and nothing writes it.
var includeUsage = openai.StreamOptions{IncludeUsage: true}

// wire builds the go-openai request. Tool schemas are sent exactly as given;
// tool names are made acceptable to the API (see toolNames).
func (o *OpenAI) wire(req *Request) (openai.ChatCompletionRequest, *toolNames) {
	names, tools := o.toolNames(req.Tools)
	w := openai.ChatCompletionRequest{
		Model:         o.cfg.Model,
		Messages:      make([]openai.ChatCompletionMessage, 0, len(req.Messages)),
		Stream:        true,
		StreamOptions: &includeUsage,
		Tools:         tools,
	}
	for _, m := range req.Messages {
		if m.Empty() {
			// Endpoints reject an assistant message without content or tool
			// calls, or the model imitates it: it is no history.
			continue
		}
		wm := openai.ChatCompletionMessage{Role: string(m.Role), Content: m.Content, ToolCallID: m.ToolCallID}
		if len(m.ToolCalls) > 0 {
			wm.ToolCalls = make([]openai.ToolCall, len(m.ToolCalls))
			for j, c := range m.ToolCalls {
				wm.ToolCalls[j] = openai.ToolCall{ID: c.ID, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: names.wire(c.Name), Arguments: c.Arguments}}
			}
		}
		w.Messages = append(w.Messages, wm)
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

// whole makes one non-streamed call.
func (o *OpenAI) whole(ctx context.Context, wreq *openai.ChatCompletionRequest, names *toolNames) (*Response, error) {
	r := *wreq
	r.Stream, r.StreamOptions = false, nil
	resp, err := o.client.CreateChatCompletion(ctx, r)
	if err != nil {
		return nil, classify(err)
	}
	var c *openai.ChatCompletionChoice
	for i := range resp.Choices {
		if resp.Choices[i].Index == 0 {
			c = &resp.Choices[i]
			break
		}
	}
	if c == nil {
		return nil, &Error{Message: fmt.Sprintf("the reply has no choice with index 0 (%d choices; is base_url an OpenAI-compatible API root, such as .../v1?)", len(resp.Choices))}
	}
	var calls toolCalls
	for _, tc := range c.Message.ToolCalls {
		tc.Index = nil // whole calls come in order; some servers number them all 0
		if err := calls.add(tc); err != nil {
			return nil, err
		}
	}
	return &Response{
		Message:      Message{Role: RoleAssistant, Content: c.Message.Content, ToolCalls: calls.done(names)},
		FinishReason: string(c.FinishReason),
		Usage:        Usage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens, TotalTokens: resp.Usage.TotalTokens},
	}, nil
}

// streamed makes one streamed call. delivered reports whether any chunk
// reached the caller; a nil result with a nil error means the caller stopped.
func (o *OpenAI) streamed(ctx context.Context, wreq *openai.ChatCompletionRequest, names *toolNames, st *attemptState, yield func(Chunk, error) bool) (res *Response, delivered bool, err error) {
	stream, err := o.openStream(ctx, wreq)
	if err != nil {
		return nil, false, err
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
			st.finished() // what is left of the body is its end: drain it, keep the connection
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

// classify turns a failure to get a stream going into an *Error.
func classify(err error) error {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return &Error{Status: apiErr.HTTPStatusCode, Message: apiErr.Message, Retryable: httpretry.Retryable(apiErr.HTTPStatusCode)}
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
		return &Error{Status: reqErr.HTTPStatusCode, Message: msg, Retryable: httpretry.Retryable(reqErr.HTTPStatusCode)}
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
	case errors.Is(err, errBadChunk), errors.As(err, &syntaxErr), errors.As(err, &typeErr), errors.Is(err, openai.ErrTooManyEmptyStreamMessages):
		return &Error{Message: fmt.Sprintf("invalid stream: %v", err)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Message: "the stream was cut off", Retryable: true}
	}
	// A broken connection mid-stream.
	return &Error{Message: fmt.Sprintf("reading the stream: %v", err), Retryable: true}
}

// attemptState is what the HTTP layer tells the retry loop about one
// attempt, which go-openai's errors do not carry: the endpoint's
// Retry-After and whether the first-byte timeout fired. It also sets how
// long the first byte may take, and lets the stream mark its body drained.
type attemptState struct {
	stream    bool
	firstByte time.Duration // 0: no first-byte timeout

	retryAfter    time.Duration
	retryAfterSet bool
	timedOut      atomic.Bool

	body *body // the response body, once there is one
}

// finished marks the attempt's stream as read to its end.
func (st *attemptState) finished() {
	if st.body != nil {
		st.body.complete.Store(true)
	}
}

type stateKey struct{}

// doer is the HTTP layer under go-openai: it bounds the wait for the
// response by the first-byte timeout, records Retry-After of error
// responses, and wraps bodies so that connections go back to the pool.
type doer struct{ c *http.Client }

func (d doer) Do(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(stateKey{}).(*attemptState)
	if st == nil {
		return d.c.Do(req)
	}
	ctx, cancel := context.WithCancel(req.Context())
	var timer *time.Timer
	if st.firstByte > 0 {
		timer = time.AfterFunc(st.firstByte, func() {
			st.timedOut.Store(true)
			cancel()
		})
	}
	resp, err := d.c.Do(req.WithContext(ctx))
	if timer != nil && !timer.Stop() && err == nil {
		// The timeout fired as the response arrived: it is too late.
		resp.Body.Close()
		resp, err = nil, context.Canceled
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode >= 400 {
		st.retryAfter, st.retryAfterSet = httpretry.After(resp.Header.Get("Retry-After"), time.Now())
	}
	b := &body{ReadCloser: resp.Body, cancel: cancel}
	// A non-streamed body is whole once the server answered: draining what
	// the JSON decoder left (a newline, the chunked terminator) is cheap.
	b.complete.Store(!st.stream || resp.StatusCode >= 400)
	st.body = b
	resp.Body = b
	return resp, nil
}

// maxDrain bounds what Close reads of a complete body to reuse its
// connection.
const maxDrain = 64 << 10

// body is a response body that, once its reply is complete, is drained on
// Close so that its connection is reused (an unread remainder makes net/http
// close it); a body closed early is not drained — the model may still be
// writing — and its connection is closed.
type body struct {
	io.ReadCloser
	cancel   context.CancelFunc
	complete atomic.Bool
}

func (b *body) Close() error {
	if b.complete.Load() {
		_, _ = io.CopyN(io.Discard, b.ReadCloser, maxDrain)
	}
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
