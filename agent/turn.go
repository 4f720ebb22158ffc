package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// recentTurns is how many earlier turns a turn sees as conversation.
const recentTurns = 6

// turnRecord is what memory keeps of a turn (Record.Data of a KindTurn record).
type turnRecord struct {
	N          uint64      `json:"n"` // the agent's turn count, this one included
	Input      Input       `json:"input"`
	Calls      []callNote  `json:"calls,omitempty"`
	Reply      string      `json:"reply"`
	EndedBy    string      `json:"ended_by"`        // "answer" or the error's code
	Error      *wire.Error `json:"error,omitempty"` // why a turn that failed failed
	ModelCalls int         `json:"model_calls"`
	Tokens     int         `json:"tokens"`
	Millis     int64       `json:"millis"`
}

type callNote struct {
	ID     string          `json:"id"`
	Tool   string          `json:"tool"`
	Args   json.RawMessage `json:"args,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *tool.Error     `json:"error,omitempty"`
}

// turn runs one model-driven turn and streams its events. The record of
// the turn is durable before its last event is sent (EventStored after an
// answer, EventError for a failed turn): a reply reported as stored
// survives a crash. The EventReply before EventStored is the answer, not
// yet durable.
func (a *Agent) turn(ctx context.Context, in Input, emit func(Event) bool) {
	start := time.Now()
	id := ulid.Make().String()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Limits.WallTime.Std())
	defer cancel()
	defer a.track(cancel)()
	ctx = withDepth(ctx, in.Depth)
	ctx, span := a.fleet.startSpan(ctx, "invoke_agent", a.cfg.Name, trace.SpanKindInternal, func() []attribute.KeyValue {
		return []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", "invoke_agent"),
			attribute.String("gen_ai.agent.name", a.cfg.Name),
			attribute.String("gen_ai.conversation.id", a.ns),
			attribute.String("depai.turn.id", id),
			attribute.String("depai.input.source", string(in.Source)),
			attribute.Int("depai.input.depth", in.Depth),
		}
	})
	defer span.End()
	traceID := ""
	if sc := span.SpanContext(); sc.HasTraceID() {
		traceID = sc.TraceID().String()
	}

	open := true
	send := func(ev Event) {
		if !open {
			return
		}
		ev.TurnID = id
		if !emit(ev) {
			open = false
			cancel() // the consumer left: stop working for it
		}
	}
	if a.model == nil {
		// Not a turn: nothing is stored, nothing is counted.
		send(Event{Type: EventReply, Text: a.noModelReply()})
		return
	}
	rec := turnRecord{Input: in}
	a.unanswered.Add(1)
	if err := a.plugins.wait(ctx); err != nil {
		a.interrupted(ctx, &rec, err)
	} else {
		a.run(ctx, &rec, send)
	}
	others := a.unanswered.Add(-1)
	rec.Millis = time.Since(start).Milliseconds()
	a.fleet.opts.Metrics.Turn(a.cfg.Name, rec.EndedBy, time.Since(start), rec.Tokens)
	rec.N = a.turns.Add(1)
	a.lastTurn.Store(time.Now().UnixNano())
	a.remember(id, &rec)
	// The consumer may be gone (cancelled): the turn is stored anyway, since
	// what happened is history.
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("depai.turn.model_calls", rec.ModelCalls), attribute.Int("depai.turn.tokens", rec.Tokens), attribute.String("depai.turn.ended_by", rec.EndedBy))
	}
	if rec.Error != nil {
		// A failed turn ends with its error once its record is durable:
		// there is no answer to hand out early.
		if err := a.storeTurn(context.WithoutCancel(ctx), id, &rec, false); err != nil {
			send(a.notStored(span, traceID, id, &rec, err))
			return
		}
		span.SetStatus(codes.Error, rec.Error.Code)
		ev := errorEvent(rec.Error.Code, rec.Error.Message)
		ev.TraceID = traceID
		send(ev)
		return
	}
	// The answer goes out as soon as it exists, and EventStored follows when
	// its record is durable (group commit makes that one fsync for every
	// turn finishing meanwhile, so the turn does not wait for its own). The
	// write runs on its own, so a consumer that stops at the answer neither
	// cancels nor loses it; Close waits for it, and WaitStored, which is why
	// it is counted before the answer goes out.
	//
	// The record may wait a moment for other writes to share its commit and
	// fsync (memory.DB.PutDeferred) when nobody waits for it — the consumer
	// stopped at the answer — or while other turns of the agent have yet to
	// answer, so theirs will come. The last of those commits at once and
	// takes the waiting records with it; so does a lone turn whose consumer
	// waits for EventStored (Ask, the API), which nothing would join.
	stored := make(chan error, 1)
	a.storing.add()
	send(Event{Type: EventReply, Text: rec.Reply, TraceID: traceID})
	deferred := others > 0 || !open
	write := func() {
		defer a.storing.done()
		stored <- a.storeTurn(context.WithoutCancel(ctx), id, &rec, deferred)
	}
	if !a.fleet.goBG(write) {
		write() // closing: no new goroutine
	}
	if !open {
		return
	}
	if err := <-stored; err != nil {
		send(a.notStored(span, traceID, id, &rec, err))
		return
	}
	send(Event{Type: EventStored, TraceID: traceID})
}

// notStored is the error event of a turn whose record could not be
// written: what was answered is not durable.
func (a *Agent) notStored(span trace.Span, traceID, id string, rec *turnRecord, err error) Event {
	a.log.Error("store turn", "turn", id, "err", err)
	span.SetStatus(codes.Error, "turn not stored")
	ev := errorEvent(CodeUnavailable, fmt.Sprintf("the turn could not be stored, so it is not durable: %v (its reply was: %.500s)", err, rec.Reply))
	ev.TraceID = traceID
	return ev
}

// WaitStored waits until the record of every turn that answered so far is
// durable, or could not be written (its consumer, if still there, got an
// EventError). A program that stops reading turns at their EventReply calls
// it before it exits, so that what it answered is kept. Records that
// nobody waited for may be waiting to share a commit (see turn): they now
// have a waiter, so they commit at once.
func (a *Agent) WaitStored(ctx context.Context) error {
	if a.storing.busy() {
		if err := a.mem.Flush(ctx); err != nil {
			return fmt.Errorf("agent %s: wait for turn records: %w", a.cfg.Name, err)
		}
	}
	return a.storing.wait(ctx)
}

// maxPendingStores bounds an agent's turn records written after their
// answer went out: a model that answers faster than the disk commits then
// waits for the disk (the answer of the turn over the bound waits for a
// place), instead of piling up answered turns that are not durable yet.
// The bound is what one group commit takes at the turn rate the agent
// reaches on 8 sessions times the fsync latency of a busy disk (some 2,300
// turns/s × 10 ms here): at 16 the answers waited for places 40 % of a
// turn's time, and the harness's 8 sessions ran 30 % slower (1,660–1,900
// turns/s against 2,260–2,310 at 64, interleaved runs at load 6).
const maxPendingStores = 64

// pending counts the turn records being written after their answer went
// out.
type pending struct {
	mu   sync.Mutex
	room *sync.Cond // signalled when n drops below maxPendingStores
	n    int
	idle chan struct{} // closed when n drops to 0
}

// add counts one more record, once there is room for it.
func (p *pending) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.room == nil {
		p.room = sync.NewCond(&p.mu)
	}
	for p.n >= maxPendingStores {
		p.room.Wait()
	}
	if p.n == 0 {
		p.idle = make(chan struct{})
	}
	p.n++
}

// done uncounts a record add counted.
func (p *pending) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	p.room.Signal() // add made it
	if p.n == 0 {
		close(p.idle)
	}
}

// busy reports whether records are being written.
func (p *pending) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n > 0
}

func (p *pending) wait(ctx context.Context) error {
	p.mu.Lock()
	idle := p.idle
	busy := p.n > 0
	p.mu.Unlock()
	if !busy {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func errorEvent(code, msg string) Event { return Event{Type: EventError, Code: code, Error: msg} }

// depthKey carries a turn's depth to the tools it calls, so what they
// write carries it on (see depthTag).
type depthKey struct{}

func withDepth(ctx context.Context, d int) context.Context {
	return context.WithValue(ctx, depthKey{}, d)
}

func depthFrom(ctx context.Context) (int, bool) {
	d, ok := ctx.Value(depthKey{}).(int)
	return d, ok
}

// pastTurn is one exchange of the conversation a turn sees.
type pastTurn struct {
	id    string
	input Input
	reply string
}

// remember appends a finished turn to the in-RAM conversation. A turn
// without an answer is no exchange: an empty assistant message is never
// sent to a model. A one-shot turn is not part of the conversation, also
// when loadHistory reads it back after a restart.
func (a *Agent) remember(id string, rec *turnRecord) {
	if rec.Error != nil || strings.TrimSpace(rec.Reply) == "" || rec.Input.OneShot {
		return
	}
	a.histMu.Lock()
	defer a.histMu.Unlock()
	a.history = append(a.history, pastTurn{id: id, input: rec.Input, reply: rec.Reply})
	if n := len(a.history); n > recentTurns {
		a.history = slices.Delete(a.history, 0, n-recentTurns)
	}
}

// loadHistory fills the in-RAM conversation from memory at start: the
// newest turns since the last /reset, and the turn count.
func (a *Agent) loadHistory(ctx context.Context) error {
	for r, err := range a.mem.Query(ctx, memory.Query{Namespace: a.ns, Kinds: []memory.Kind{memory.KindMessage}, Tags: []string{resetTag}, Limit: 1}) {
		if err != nil {
			return fmt.Errorf("conversation reset: %w", err)
		}
		a.since = r.Seq
	}
	var recs []memory.Record
	for r, err := range a.mem.Query(ctx, memory.Query{Namespace: a.ns, Kinds: []memory.Kind{memory.KindTurn}, Limit: recentTurns}) {
		if err != nil {
			return fmt.Errorf("recent turns: %w", err)
		}
		recs = append(recs, r)
	}
	slices.Reverse(recs)
	for _, r := range recs {
		var t turnRecord
		if err := json.Unmarshal(r.Data, &t); err != nil {
			a.log.Warn("skipping unreadable turn record", "id", r.ID, "err", err)
			continue
		}
		a.turns.Store(max(a.turns.Load(), t.N))
		if r.Seq > a.since {
			a.remember(turnID(r), &t)
		}
	}
	return nil
}

// resetTag marks the record /reset writes: turns before it are not part of
// the conversation any more.
const resetTag = "conversation:reset"

// reset starts a new conversation; it is durable, so a restart keeps it.
func (a *Agent) reset(ctx context.Context, by string) error {
	recs, err := a.mem.Put(ctx, memory.Record{Namespace: a.ns, Kind: memory.KindMessage, Author: a.cfg.Name, Text: "conversation reset by " + by, Tags: []string{resetTag}})
	if err != nil {
		return err
	}
	a.histMu.Lock()
	defer a.histMu.Unlock()
	a.history, a.since = nil, recs[0].Seq
	return nil
}

// turnID is the turn a KindTurn record stores, from its "turn:" tag.
func turnID(r memory.Record) string {
	for _, t := range r.Tags {
		if id, ok := strings.CutPrefix(t, "turn:"); ok {
			return id
		}
	}
	return ""
}

func (a *Agent) noModelReply() string {
	return fmt.Sprintf(`Agent %s has no model configured, so it answers commands only (try /help).
To chat, point it at any OpenAI-compatible endpoint in its config:
  model:
    base_url: http://127.0.0.1:11434/v1   # Ollama; or https://api.openai.com/v1, vLLM, llama.cpp server
    model: llama3.2
    api_key_env: OPENAI_API_KEY           # the env var holding the key, if the endpoint needs one`, a.cfg.Name)
}

// run is the model loop: generate, run tool calls, feed results back, until
// the model answers or a bound is hit.
func (a *Agent) run(ctx context.Context, rec *turnRecord, emit func(Event)) {
	lim := a.cfg.Limits
	msgs := a.compose(ctx, rec.Input)
	specs := a.modelTools()
	toolCalls := 0
	for {
		if rec.ModelCalls >= lim.ModelCalls {
			rec.fail(CodeBound, boundText("model_calls", fmt.Sprintf("%d model calls", lim.ModelCalls)))
			return
		}
		if lim.Tokens > 0 && rec.Tokens >= lim.Tokens {
			rec.fail(CodeBound, boundText("tokens", fmt.Sprintf("%d tokens", lim.Tokens)))
			return
		}
		rec.ModelCalls++
		began := time.Now()
		mctx, span := a.fleet.startSpan(ctx, "chat", a.cfg.Model.Model, trace.SpanKindClient, func() []attribute.KeyValue {
			return []attribute.KeyValue{
				attribute.String("gen_ai.operation.name", "chat"),
				attribute.String("gen_ai.provider.name", "openai"),
				attribute.String("gen_ai.request.model", a.cfg.Model.Model),
				attribute.String("server.address", a.cfg.Model.BaseURL),
			}
		})
		resp, err := a.generate(mctx, &llm.Request{Messages: msgs, Tools: specs, MaxTokens: a.cfg.Model.MaxTokens, Temperature: a.cfg.Model.Temperature}, emit)
		if err != nil {
			a.interrupted(ctx, rec, err)
			a.fleet.opts.Metrics.ModelCall(a.cfg.Name, rec.EndedBy, time.Since(began))
			span.SetStatus(codes.Error, rec.EndedBy)
			span.SetAttributes(attribute.String("error.type", rec.EndedBy))
			span.End()
			return
		}
		a.fleet.opts.Metrics.ModelCall(a.cfg.Name, "ok", time.Since(began))
		if span.IsRecording() {
			span.SetAttributes(
				attribute.Int("gen_ai.usage.input_tokens", resp.Usage.PromptTokens),
				attribute.Int("gen_ai.usage.output_tokens", resp.Usage.CompletionTokens),
				attribute.StringSlice("gen_ai.response.finish_reasons", []string{resp.FinishReason}),
			)
		}
		span.End()
		rec.Tokens += usedTokens(msgs, resp)
		calls := resp.Message.ToolCalls
		if len(calls) == 0 && strings.TrimSpace(resp.Message.Content) == "" {
			rec.fail(CodeModelEmpty, fmt.Sprintf("the model at %s answered with neither text nor a tool call (finish reason %q)", a.cfg.Model.BaseURL, resp.FinishReason))
			return
		}
		msgs = append(msgs, resp.Message)
		if len(calls) == 0 {
			rec.Reply, rec.EndedBy = resp.Message.Content, "answer"
			if resp.FinishReason == "length" {
				rec.Reply += "\n[reply cut short: the model hit its output token limit]"
			}
			return
		}
		if toolCalls+len(calls) > lim.ToolCalls {
			rec.fail(CodeBound, boundText("tool_calls", fmt.Sprintf("%d tool calls", lim.ToolCalls)))
			return
		}
		toolCalls += len(calls)
		notes := a.runCalls(ctx, calls, emit)
		rec.Calls = append(rec.Calls, notes...)
		for _, n := range notes {
			msgs = append(msgs, llm.Message{Role: llm.RoleTool, ToolCallID: n.ID, Content: toolContent(n)})
		}
		if ctx.Err() != nil {
			a.interrupted(ctx, rec, ctx.Err())
			return
		}
	}
}

// fail ends the turn with an error.
func (rec *turnRecord) fail(code, msg string) {
	rec.EndedBy, rec.Error = code, &wire.Error{Code: code, Message: msg}
}

// usedTokens is the call's token count as the endpoint reported it, or an
// estimate (about four bytes a token) from an endpoint that reports none, so
// the token bound holds either way.
func usedTokens(sent []llm.Message, resp *llm.Response) int {
	if resp.Usage.TotalTokens > 0 {
		return resp.Usage.TotalTokens
	}
	n := len(resp.Message.Content)
	for _, c := range resp.Message.ToolCalls {
		n += len(c.Name) + len(c.Arguments)
	}
	for _, m := range sent {
		n += len(m.Content)
		for _, c := range m.ToolCalls {
			n += len(c.Name) + len(c.Arguments)
		}
	}
	return n/4 + 1
}

func boundText(key, what string) string {
	return fmt.Sprintf("the turn reached its limit of %s (limits.%s in the agent's config); ask again with a narrower request, or raise the limit", what, key)
}

// interrupted records why a turn ended early on an error.
func (a *Agent) interrupted(ctx context.Context, rec *turnRecord, err error) {
	switch {
	case a.fleet.Stopped() && ctx.Err() != nil:
		rec.fail(CodeEStop, "the emergency stop cancelled the turn (an admin's /resume releases it)")
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		rec.fail(CodeBound, boundText("wall_time", a.cfg.Limits.WallTime.String()+" of wall time"))
	case ctx.Err() != nil:
		rec.fail(CodeCancelled, "the turn was cancelled")
	default:
		code := CodeModelUnavailable
		switch {
		case errors.Is(err, llm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			code = CodeModelTimeout
		case errors.Is(err, llm.ErrEmpty):
			code = CodeModelEmpty
		}
		a.log.Warn("model call failed", "endpoint", a.cfg.Model.BaseURL, "code", code, "err", err)
		rec.fail(code, fmt.Sprintf("model endpoint %s: %v", a.cfg.Model.BaseURL, err))
	}
}

// generate makes one model call, streaming text deltas as they arrive.
func (a *Agent) generate(ctx context.Context, req *llm.Request, emit func(Event)) (*llm.Response, error) {
	for chunk, err := range a.model.Generate(ctx, req) {
		if err != nil {
			return nil, err
		}
		if chunk.Text != "" {
			emit(Event{Type: EventDelta, Text: chunk.Text})
		}
		if chunk.Final != nil {
			return chunk.Final, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("model stream ended without a final message")
}

// compose builds the conversation for a turn: the persona, recent turns
// (none for a one-shot input) and the new input.
func (a *Agent) compose(ctx context.Context, in Input) []llm.Message {
	// The conversation is at most recentTurns long: copied to the stack, not
	// the heap.
	var buf [recentTurns]pastTurn
	var recent []pastTurn
	if !in.OneShot {
		a.histMu.Lock()
		recent = buf[:copy(buf[:], a.history)]
		a.histMu.Unlock()
	}
	var ids [recentTurns]string
	for i, t := range recent {
		ids[i] = t.id
	}
	var system strings.Builder
	a.systemPrompt(&system)
	a.recalled(ctx, &system, in, ids[:len(recent)])
	msgs := make([]llm.Message, 0, 2+2*len(recent)+3) // and room for a round of one tool call and the answer
	msgs = append(msgs, llm.Message{Role: llm.RoleSystem, Content: system.String()})
	for _, t := range recent {
		msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: inputText(t.input)}, llm.Message{Role: llm.RoleAssistant, Content: t.reply})
	}
	return append(msgs, llm.Message{Role: llm.RoleUser, Content: inputText(in)})
}

// systemPrompt writes the persona and the agent's situation to b.
func (a *Agent) systemPrompt(b *strings.Builder) {
	if a.cfg.Persona != "" {
		b.WriteString(a.cfg.Persona)
		b.WriteString("\n\n")
	}
	var stamp [len(time.RFC3339) + 8]byte
	b.WriteString("You are ")
	b.WriteString(a.cfg.Name)
	b.WriteString(", a ")
	b.WriteString(a.cfg.Role)
	b.WriteString(" agent of depai. The time is ")
	b.Write(time.Now().UTC().AppendFormat(stamp[:0], time.RFC3339))
	b.WriteString(". Use the tools when they help; answer briefly.")
	if a.fleet.Stopped() {
		b.WriteString(" The emergency stop is engaged: actuators and payments are locked.")
	}
}

// inputText says who is speaking when it is not the operator.
func inputText(in Input) string {
	if in.Source == SourceOperator || in.Source == "" {
		return in.Text
	}
	return fmt.Sprintf("[%s %s] %s", in.Source, in.From, in.Text)
}

// storeTurn writes a turn's record; a deferred one may wait a moment for
// other writes to share its commit (memory.DB.PutDeferred).
func (a *Agent) storeTurn(ctx context.Context, id string, rec *turnRecord, deferred bool) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode turn %s: %w", id, err)
	}
	text := inputText(rec.Input) + "\n" + rec.Reply
	if rec.Error != nil {
		text = inputText(rec.Input) + "\n[" + rec.Error.Code + "] " + rec.Error.Message
	}
	put := a.mem.Put
	if deferred {
		put = a.mem.PutDeferred
	}
	_, err = put(ctx, memory.Record{
		Namespace: a.ns,
		Kind:      memory.KindTurn,
		Author:    a.cfg.Name,
		Text:      text,
		Data:      data,
		Tags:      turnTags(id, rec),
	})
	return err
}

// turnTags are a turn record's tags in two allocations, not one a tag: the
// turn's own tag, and the other three cut from one string. (The recall index
// keeps every distinct tag, so the unique one must not pin the others.)
func turnTags(id string, rec *turnRecord) []string {
	var buf [96]byte
	b := append(append(buf[:0], "source:"...), rec.Input.Source...)
	source := len(b)
	b = append(append(b, "ended:"...), rec.EndedBy...)
	ended := len(b)
	b = strconv.AppendInt(append(b, depthTag...), int64(rec.Input.Depth), 10)
	rest := string(b)
	return []string{"turn:" + id, rest[:source], rest[source:ended], rest[ended:]}
}
