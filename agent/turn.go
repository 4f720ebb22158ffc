package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
)

// recentTurns is how many earlier turns a turn sees as conversation.
const recentTurns = 6

// turnRecord is what memory keeps of a turn (Record.Data of a KindTurn record).
type turnRecord struct {
	Input      Input      `json:"input"`
	Calls      []callNote `json:"calls,omitempty"`
	Reply      string     `json:"reply"`
	EndedBy    string     `json:"ended_by"` // "answer", "no_model", a bound ("model_calls" …), "cancelled", "model_error"
	ModelCalls int        `json:"model_calls"`
	Tokens     int        `json:"tokens"`
	Millis     int64      `json:"millis"`
}

type callNote struct {
	ID     string          `json:"id"`
	Tool   string          `json:"tool"`
	Args   json.RawMessage `json:"args,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *tool.Error     `json:"error,omitempty"`
}

// turn runs one model-driven turn and streams its events.
func (a *Agent) turn(ctx context.Context, in Input, yield func(Event, error) bool) {
	start := time.Now()
	id := ulid.Make().String()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Limits.WallTime.Std())
	defer cancel()
	defer a.track(cancel)()

	open := true
	emit := func(ev Event) {
		if !open {
			return
		}
		ev.TurnID = id
		if !yield(ev, nil) {
			open = false
			cancel() // the consumer left: stop working for it
		}
	}

	rec := turnRecord{Input: in}
	switch {
	case a.model == nil:
		rec.Reply, rec.EndedBy = a.noModelReply(), "no_model"
	case a.waitPlugins(ctx) != nil:
		rec.Reply, rec.EndedBy = a.interrupted(ctx, ctx.Err())
	default:
		a.run(ctx, &rec, emit)
	}
	rec.Millis = time.Since(start).Milliseconds()
	a.turns.Add(1)
	a.lastTurn.Store(time.Now().UnixNano())

	// The turn is stored even when it was cancelled: what happened is
	// history. It is written behind the reply — the next turn reads its
	// conversation from RAM, and readers of memory wait for pending writes
	// (see settle) — so a durable write is not on the turn's critical path.
	a.remember(id, &rec)
	a.writes.Go(func() {
		if err := a.storeTurn(context.WithoutCancel(ctx), id, &rec); err != nil {
			a.log.Error("store turn", "turn", id, "err", err)
		}
	})
	emit(Event{Type: EventReply, Text: rec.Reply})
}

// pastTurn is one exchange of the conversation a turn sees.
type pastTurn struct {
	id    string
	input Input
	reply string
}

// remember appends a finished turn to the in-RAM conversation.
func (a *Agent) remember(id string, rec *turnRecord) {
	if rec.EndedBy == "no_model" {
		return
	}
	a.histMu.Lock()
	defer a.histMu.Unlock()
	a.history = append(a.history, pastTurn{id: id, input: rec.Input, reply: rec.Reply})
	if n := len(a.history); n > recentTurns {
		a.history = slices.Delete(a.history, 0, n-recentTurns)
	}
}

// loadHistory fills the in-RAM conversation from memory at start.
func (a *Agent) loadHistory(ctx context.Context) error {
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
		a.remember(turnID(r), &t)
	}
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

// settle waits until the agent's turn records are written, so what memory
// says includes every finished turn.
func (a *Agent) settle() { a.writes.Wait() }

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
			rec.Reply, rec.EndedBy = boundReply("model_calls", fmt.Sprintf("%d model calls", lim.ModelCalls)), "model_calls"
			return
		}
		if lim.Tokens > 0 && rec.Tokens >= lim.Tokens {
			rec.Reply, rec.EndedBy = boundReply("tokens", fmt.Sprintf("%d tokens", lim.Tokens)), "tokens"
			return
		}
		rec.ModelCalls++
		resp, err := a.generate(ctx, &llm.Request{Messages: msgs, Tools: specs, MaxTokens: a.cfg.Model.MaxTokens, Temperature: a.cfg.Model.Temperature}, emit)
		if err != nil {
			rec.Reply, rec.EndedBy = a.interrupted(ctx, err)
			return
		}
		rec.Tokens += usedTokens(msgs, resp)
		msgs = append(msgs, resp.Message)
		calls := resp.Message.ToolCalls
		if len(calls) == 0 {
			rec.Reply, rec.EndedBy = resp.Message.Content, "answer"
			if resp.FinishReason == "length" {
				rec.Reply += "\n[reply cut short: the model hit its output token limit]"
			}
			return
		}
		if toolCalls+len(calls) > lim.ToolCalls {
			rec.Reply, rec.EndedBy = boundReply("tool_calls", fmt.Sprintf("%d tool calls", lim.ToolCalls)), "tool_calls"
			return
		}
		toolCalls += len(calls)
		notes := a.runCalls(ctx, calls, emit)
		rec.Calls = append(rec.Calls, notes...)
		for _, n := range notes {
			msgs = append(msgs, llm.Message{Role: llm.RoleTool, ToolCallID: n.ID, Content: toolContent(n)})
		}
		if ctx.Err() != nil {
			rec.Reply, rec.EndedBy = a.interrupted(ctx, ctx.Err())
			return
		}
	}
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

func boundReply(key, what string) string {
	return fmt.Sprintf("I stopped this turn: it reached its limit of %s (limits.%s in the agent's config). Ask again with a narrower request, or raise the limit.", what, key)
}

// interrupted explains why a turn ended early on an error.
func (a *Agent) interrupted(ctx context.Context, err error) (reply, endedBy string) {
	switch {
	case a.fleet.Stopped() && ctx.Err() != nil:
		return "Turn cancelled: the emergency stop is engaged (/resume releases it).", "estop"
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return boundReply("wall_time", a.cfg.Limits.WallTime.String()+" of wall time"), "wall_time"
	case ctx.Err() != nil:
		return "Turn cancelled.", "cancelled"
	}
	a.log.Warn("model call failed", "err", err)
	return fmt.Sprintf("The model endpoint failed, so this turn has no answer: %v", err), "model_error"
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

// runCalls runs one round of tool calls in parallel and reports them in the
// order the model asked for them.
func (a *Agent) runCalls(ctx context.Context, calls []llm.ToolCall, emit func(Event)) []callNote {
	notes := make([]callNote, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		args, argErr := cleanArgs(c.Arguments)
		notes[i] = callNote{ID: c.ID, Tool: c.Name, Args: args}
		emit(Event{Type: EventToolCall, Tool: c.Name, CallID: c.ID, Data: args})
		if argErr != nil {
			notes[i].Args = nil
			notes[i].Error = argErr
			continue
		}
		wg.Go(func() {
			out, err := a.invoke(ctx, c.Name, args, "model")
			notes[i].Result, notes[i].Error = out, asToolError(err)
		})
	}
	wg.Wait()
	for _, n := range notes {
		ev := Event{Type: EventToolResult, Tool: n.Tool, CallID: n.ID, Data: n.Result}
		if n.Error != nil {
			ev.Error = n.Error.Error()
		}
		emit(ev)
	}
	return notes
}

// cleanArgs accepts the JSON arguments a model produced, forgiving a Markdown
// code fence around them; anything else that is not a JSON object is an error
// the model is told about.
func cleanArgs(s string) (json.RawMessage, *tool.Error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "```"); ok {
		rest = strings.TrimPrefix(rest, "json")
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "```"))
	}
	if s == "" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid([]byte(s)) || !strings.HasPrefix(s, "{") {
		return nil, &tool.Error{Code: tool.CodeInvalidArgument, Message: fmt.Sprintf("arguments must be one JSON object; got %.200q", s)}
	}
	return json.RawMessage(s), nil
}

func asToolError(err error) *tool.Error {
	if err == nil {
		return nil
	}
	var te *tool.Error
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &tool.Error{Code: tool.CodeTimeout, Message: err.Error(), Retryable: true}
	}
	return &tool.Error{Code: tool.CodeInternal, Message: err.Error()}
}

// toolContent is what the model reads as a tool's answer.
func toolContent(n callNote) string {
	if n.Error != nil {
		b, _ := json.Marshal(map[string]*tool.Error{"error": n.Error})
		return string(b)
	}
	if len(n.Result) == 0 {
		return "null"
	}
	return string(n.Result)
}

// modelTools describes the agent's tools to the model.
func (a *Agent) modelTools() []llm.ToolSpec {
	specs := a.tools.Specs()
	out := make([]llm.ToolSpec, len(specs))
	for i, s := range specs {
		out[i] = llm.ToolSpec{Name: s.Name, Description: s.Description, Parameters: s.InputSchema}
	}
	return out
}

// compose builds the conversation for a turn: the persona, recent turns and
// the new input.
func (a *Agent) compose(ctx context.Context, in Input) []llm.Message {
	a.histMu.Lock()
	recent := slices.Clone(a.history)
	a.histMu.Unlock()
	inConversation := make(map[string]bool, len(recent))
	for _, t := range recent {
		inConversation[t.id] = true
	}
	system := a.systemPrompt()
	if mem := a.recalled(ctx, in, inConversation); mem != "" {
		system += "\n\n" + mem
	}
	msgs := make([]llm.Message, 0, 2+2*len(recent))
	msgs = append(msgs, llm.Message{Role: llm.RoleSystem, Content: system})
	for _, t := range recent {
		msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: inputText(t.input)}, llm.Message{Role: llm.RoleAssistant, Content: t.reply})
	}
	return append(msgs, llm.Message{Role: llm.RoleUser, Content: inputText(in)})
}

func (a *Agent) systemPrompt() string {
	var b strings.Builder
	if a.cfg.Persona != "" {
		b.WriteString(a.cfg.Persona)
		b.WriteString("\n\n")
	}
	fmt.Fprintf(&b, "You are %s, a %s agent of depai. The time is %s. Use the tools when they help; answer briefly.",
		a.cfg.Name, a.cfg.Role, time.Now().UTC().Format(time.RFC3339))
	if a.fleet.Stopped() {
		b.WriteString(" The emergency stop is engaged: actuators and payments are locked.")
	}
	return b.String()
}

// inputText says who is speaking when it is not the operator.
func inputText(in Input) string {
	if in.Source == SourceOperator || in.Source == "" {
		return in.Text
	}
	return fmt.Sprintf("[%s %s] %s", in.Source, in.From, in.Text)
}

func (a *Agent) storeTurn(ctx context.Context, id string, rec *turnRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode turn %s: %w", id, err)
	}
	_, err = a.mem.Put(ctx, memory.Record{
		Namespace: a.ns,
		Kind:      memory.KindTurn,
		Author:    a.cfg.Name,
		Text:      inputText(rec.Input) + "\n" + rec.Reply,
		Data:      data,
		Tags:      []string{"turn:" + id, "source:" + string(rec.Input.Source), "ended:" + rec.EndedBy},
	})
	return err
}
