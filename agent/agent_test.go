package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/agent/transports"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/embed/embedtest"
)

// sharedCache is one plugin cache for every fleet in this test binary, so
// each example plugin is built once per target rather than once per test.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "depai-agent-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// openFleet writes yaml to a config file in a temp dir and opens its fleet.
func openFleet(t *testing.T, yaml string) (*agent.Fleet, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	f, err := openFleetErr(t, path, yaml)
	if err != nil {
		t.Fatal(err)
	}
	return f, filepath.Join(filepath.Dir(path), "data")
}

// openFleetErr writes yaml to path and opens its fleet with a data dir beside it.
func openFleetErr(t *testing.T, path, yaml string) (*agent.Fleet, error) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(filepath.Dir(path), "data"), CacheDir: sharedCache, NewTransports: transports.Default})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := f.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return f, nil
}

// modelFleet is a fleet of one agent whose model is srv (llmtest: the wire
// protocol is real, the replies are scripted).
func modelFleet(t *testing.T, srv *llmtest.Server, limits string) *agent.Agent {
	t.Helper()
	f, _ := openFleet(t, fmt.Sprintf(`
agents:
  - name: scout
    role: robot
    model: {base_url: %q, model: test-model}
    limits: {%s}
`, srv.URL, limits))
	a, err := f.Agent("scout")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func collect(t *testing.T, a *agent.Agent, text string) []agent.Event {
	t.Helper()
	evs := events(t, a, agent.Input{Text: text})
	// A turn that answered ends with its reply, then EventStored once its
	// record is durable (TestAnswerBeforeStored); a command, or the reply
	// of an agent with no model, ends with its reply.
	if n := len(evs); n >= 2 && evs[n-1].Type == agent.EventStored {
		evs = evs[:n-1]
	}
	if evs[len(evs)-1].Type != agent.EventReply {
		t.Fatalf("%s did not end with a reply: %+v", text, evs[len(evs)-1])
	}
	return evs
}

// events runs an input and returns every event; the last must end it.
func events(t *testing.T, a *agent.Agent, in agent.Input) []agent.Event {
	t.Helper()
	var evs []agent.Event
	for ev, err := range a.Handle(t.Context(), in) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatalf("%q produced no events", in.Text)
	}
	return evs
}

// failure runs text and returns the EventError that must end it.
func failure(t *testing.T, a *agent.Agent, text string) agent.Event {
	t.Helper()
	evs := events(t, a, agent.Input{Text: text})
	last := evs[len(evs)-1]
	if last.Type != agent.EventError || last.Code == "" || last.Error == "" {
		t.Fatalf("%s did not end with an error event: %+v", text, last)
	}
	return last
}

func reply(evs []agent.Event) string { return evs[len(evs)-1].Text }

func TestTurnCallsToolAndAnswers(t *testing.T) {
	srv := llmtest.NewServer(t,
		llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "c1", Name: "clock", Arguments: "{}"}}},
		llmtest.Reply{Text: "It is noon where I am."},
	)
	a := modelFleet(t, srv, "")
	evs := collect(t, a, "what time is it?")

	var types []agent.EventType
	var deltas strings.Builder
	for _, ev := range evs {
		types = append(types, ev.Type)
		if ev.Type == agent.EventDelta {
			deltas.WriteString(ev.Text)
		}
		if ev.Type == agent.EventToolResult && !strings.Contains(string(ev.Data), `"utc"`) {
			t.Errorf("clock result = %s, want a utc field", ev.Data)
		}
	}
	if got := reply(evs); got != "It is noon where I am." {
		t.Errorf("reply = %q", got)
	}
	if deltas.String() != "It is noon where I am." {
		t.Errorf("streamed deltas = %q, want the whole reply", deltas.String())
	}
	if types[0] != agent.EventToolCall || types[1] != agent.EventToolResult {
		t.Errorf("event order = %v", types)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("model calls = %d, want 2 (one per round)", len(reqs))
	}
	if !hasTool(reqs[0].Tools, "clock") || !hasTool(reqs[0].Tools, "memory_search") {
		t.Errorf("tools offered = %+v", reqs[0].Tools)
	}
	last := reqs[1].Messages[len(reqs[1].Messages)-1]
	if last.Role != llm.RoleTool || last.ToolCallID != "c1" || !strings.Contains(last.Content, "unix") {
		t.Errorf("tool result fed back = %+v", last)
	}

	// The turn is stored whole.
	recs := turns(t, a)
	if len(recs) != 1 {
		t.Fatalf("stored turns = %d", len(recs))
	}
	var stored struct {
		Calls []struct{ Tool string } `json:"calls"`
		Reply string                  `json:"reply"`
		Ended string                  `json:"ended_by"`
	}
	if err := json.Unmarshal(recs[0].Data, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored.Calls) != 1 || stored.Calls[0].Tool != "clock" || stored.Reply != "It is noon where I am." || stored.Ended != "answer" {
		t.Errorf("stored turn = %s", recs[0].Data)
	}
	if a.Status().Turns != 1 {
		t.Errorf("status turns = %d", a.Status().Turns)
	}
}

func TestRecentTurnsAreContext(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.Reply{Text: "Noted: the gate is red."}, llmtest.Reply{Text: "Red."})
	a := modelFleet(t, srv, "")
	collect(t, a, "the gate is red")
	collect(t, a, "what colour is the gate?")
	msgs := srv.Requests()[1].Messages
	var seen bool
	for _, m := range msgs {
		if m.Role == llm.RoleAssistant && m.Content == "Noted: the gate is red." {
			seen = true
		}
	}
	if !seen {
		t.Errorf("second turn did not see the first: %+v", msgs)
	}
}

func TestParallelToolCalls(t *testing.T) {
	srv := llmtest.NewServer(t,
		llmtest.Reply{Interleave: true, ToolCalls: []llm.ToolCall{
			{ID: "a", Name: "memory.put", Arguments: `{"text":"pallet 7 is at dock B"}`},
			{ID: "b", Name: "clock", Arguments: `{}`},
		}},
		llmtest.Reply{Text: "done"},
	)
	a := modelFleet(t, srv, "")
	collect(t, a, "remember pallet 7")
	tools := srv.Requests()[1].Messages
	ids := map[string]string{}
	for _, m := range tools {
		if m.Role == llm.RoleTool {
			ids[m.ToolCallID] = m.Content
		}
	}
	if !strings.Contains(ids["a"], `"id"`) || !strings.Contains(ids["b"], "utc") {
		t.Errorf("tool results = %v", ids)
	}
	found := false
	for r, err := range a.Handle(t.Context(), agent.Input{Text: "/memory search pallet"}) {
		if err != nil {
			t.Fatal(err)
		}
		found = found || strings.Contains(r.Text, "dock B")
	}
	if !found {
		t.Error("memory.put from the model is not searchable")
	}
}

func TestBadModelOutputIsExplainedToTheModel(t *testing.T) {
	srv := llmtest.NewServer(t,
		llmtest.Reply{ToolCalls: []llm.ToolCall{
			{ID: "fenced", Name: "memory.put", Arguments: "```json\n{\"text\":\"fenced ok\"}\n```"},
			{ID: "broken", Name: "clock", Arguments: `{"oops`},
			{ID: "unknown", Name: "teleport", Arguments: `{}`},
			{ID: "invalid", Name: "memory.put", Arguments: `{"txt":"typo"}`},
		}},
		llmtest.Reply{Text: "sorry, fixed"},
	)
	a := modelFleet(t, srv, "")
	if got := reply(collect(t, a, "go")); got != "sorry, fixed" {
		t.Fatalf("reply = %q", got)
	}
	results := map[string]string{}
	for _, m := range srv.Requests()[1].Messages {
		if m.Role == llm.RoleTool {
			results[m.ToolCallID] = m.Content
		}
	}
	for id, want := range map[string]string{
		"fenced":  `"id"`,
		"broken":  "invalid_argument",
		"unknown": `no tool \"teleport\"`,
		"invalid": "invalid_argument",
	} {
		if !strings.Contains(results[id], want) {
			t.Errorf("result for %s = %s, want it to contain %s", id, results[id], want)
		}
	}
}

func TestBounds(t *testing.T) {
	loop := func() llmtest.Reply {
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{Name: "clock", Arguments: "{}"}}}
	}
	t.Run("model calls", func(t *testing.T) {
		srv := llmtest.NewServer(t, loop(), loop(), loop(), loop())
		a := modelFleet(t, srv, "model_calls: 3")
		got := failure(t, a, "loop").Error
		if !strings.Contains(got, "3 model calls") || len(srv.Requests()) != 3 {
			t.Errorf("reply %q after %d calls", got, len(srv.Requests()))
		}
	})
	t.Run("tool calls", func(t *testing.T) {
		srv := llmtest.NewServer(t, loop(), loop(), loop())
		a := modelFleet(t, srv, "tool_calls: 2")
		if got := failure(t, a, "loop"); got.Code != agent.CodeBound || !strings.Contains(got.Error, "2 tool calls") {
			t.Errorf("reply = %q", got)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		srv := llmtest.NewServer(t,
			llmtest.Reply{ToolCalls: []llm.ToolCall{{Name: "clock", Arguments: "{}"}}, Usage: &llm.Usage{TotalTokens: 600}},
			llmtest.Reply{Text: "never"},
		)
		a := modelFleet(t, srv, "tokens: 500")
		if got := failure(t, a, "loop").Error; !strings.Contains(got, "500 tokens") {
			t.Errorf("reply = %q", got)
		}
	})
	t.Run("tokens estimated when the endpoint reports none", func(t *testing.T) {
		big := strings.Repeat("x", 4000)
		srv := llmtest.NewServer(t,
			llmtest.Reply{ToolCalls: []llm.ToolCall{{Name: "memory.search", Arguments: `{"query":"` + big + `"}`}}, Usage: &llm.Usage{}},
			llmtest.Reply{Text: "never"},
		)
		a := modelFleet(t, srv, "tokens: 500")
		if got := failure(t, a, "loop").Error; !strings.Contains(got, "500 tokens") {
			t.Errorf("reply = %q", got)
		}
	})
	t.Run("wall time", func(t *testing.T) {
		srv := llmtest.NewServer(t, llmtest.Reply{Text: "thinking", Hang: true})
		a := modelFleet(t, srv, "wall_time: 300ms")
		if got := failure(t, a, "hang").Error; !strings.Contains(got, "wall time") {
			t.Errorf("reply = %q", got)
		}
	})
}

func TestModelEndpointFailuresKeepTheAgentRunning(t *testing.T) {
	srv := llmtest.NewServer(t,
		llmtest.Reply{Status: 400, Error: "model not loaded"},
		llmtest.Reply{Raw: "data: {not json\n\n"},
		llmtest.Reply{Text: "back"},
	)
	a := modelFleet(t, srv, "")
	// Failures are errors with a code naming the endpoint, never an
	// answer-shaped apology.
	if got := failure(t, a, "one"); got.Code != agent.CodeModelUnavailable || !strings.Contains(got.Error, "model not loaded") || !strings.Contains(got.Error, srv.URL) {
		t.Errorf("a 400 = %+v", got)
	}
	if got := failure(t, a, "two"); got.Code != agent.CodeModelUnavailable || !strings.Contains(got.Error, srv.URL) {
		t.Errorf("garbage SSE = %+v", got)
	}
	// A failed turn is not conversation: the next request carries no
	// empty or apologetic assistant message.
	defer func() {
		for _, m := range srv.Requests()[2].Messages {
			if m.Role == llm.RoleAssistant {
				t.Errorf("a failed turn was sent as history: %+v", m)
			}
		}
	}()
	if got := reply(collect(t, a, "three")); got != "back" {
		t.Errorf("reply after failures = %q", got)
	}
}

func TestStopCancelsARunningTurn(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.Reply{Text: "moving", Hang: true})
	a := modelFleet(t, srv, "")
	done := make(chan error)
	go func() {
		_, err := a.Ask(context.Background(), agent.Input{Text: "drive to the dock"})
		done <- err
	}()
	waitFor(t, func() bool { return a.Status().State == "busy" })
	stop := reply(collect(t, a, "/stop"))
	if !strings.Contains(stop, "1 running turn(s) cancelled") {
		t.Errorf("/stop = %q", stop)
	}
	select {
	case err := <-done:
		var te *agent.TurnError
		if !errors.As(err, &te) || te.Code != agent.CodeEStop {
			t.Errorf("cancelled turn ended with %v, want an estop error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the turn did not end after /stop")
	}
	if s := a.Status().State; s != "stopped" {
		t.Errorf("state after /stop = %q", s)
	}
	if got := reply(collect(t, a, "/resume")); !strings.Contains(got, "released") {
		t.Errorf("/resume = %q", got)
	}
	if s := a.Status().State; s != "idle" {
		t.Errorf("state after /resume = %q", s)
	}
}

func TestWithoutModel(t *testing.T) {
	f, _ := openFleet(t, `
agents:
  - name: rover
    role: robot
  - name: desk
`)
	a, err := f.Agent("rover")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Agent("nobody"); err == nil || !strings.Contains(err.Error(), "rover, desk") {
		t.Errorf("unknown agent error = %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"hello?", "base_url"},
		{"/help", "/stop"},
		{"/status", "desk"},
		{"/status", "emergency stop: released"},
		{"/status", "recall: bm25 only"},
		{"/agents", "desk"},
		{"/tools", "memory.search"},
		{"/call clock {}", `"unix"`},
		{"/call clock", `"utc"`},
		{`/call memory.put {"text":"battery at 40%"}`, `"id"`},

		{"/memory recent 5", "battery at 40%"},
		{"/memory search battery", "battery at 40%"},

		{`/call memory.put {"text":"dock door is open","kind":"fact","key":"dock-door"}`, `"id"`},
		{`/call memory.put {"text":"dock door is closed","kind":"fact","key":"dock-door"}`, `"id"`},
		{"/memory history agent/rover dock-door", "→ 20"},
		{"/memory history agent/rover dock-door", "dock door is closed"},

		{"/ask desk hi", "desk: Agent desk has no model"},
	} {
		if got := reply(collect(t, a, tc.in)); !strings.Contains(got, tc.want) {
			t.Errorf("%s → %q, want it to contain %q", tc.in, got, tc.want)
		}
	}
	// Failed commands are error events with a code, never a reply.
	for _, tc := range []struct{ in, code, want string }{
		{"/call warp {}", agent.CodeToolFailed, "no tool"},
		{"/memory recent x", agent.CodeInvalid, "positive count"},
		{"/call memory.put {\"nope\":1}", agent.CodeToolFailed, "invalid_argument"},
		{`/call memory.put {"text":"x","namespace":"agent/desk"}`, agent.CodeDenied, `memory.put: memory: write "agent/desk" by rover: memory: access denied`},
		{`/call memory.put {"text":"x","namespace":"agent//rover"}`, agent.CodeToolFailed, "invalid_argument: memory.put: "},
		{`/call memory.put {"text":"forged","kind":"audit"}`, agent.CodeDenied, "audit log only"},
		{"/memory history agent/desk dock-door", agent.CodeInvalid, "denied"},
		{"/memory history agent/rover", agent.CodeInvalid, "usage"},
		{"/ask nobody hi", agent.CodeInvalid, "no agent"},
		{"/frobnicate", agent.CodeInvalid, "unknown command"},
	} {
		if got := failure(t, a, tc.in); got.Code != tc.code || !strings.Contains(got.Error, tc.want) {
			t.Errorf("%s → %+v, want code %s and %q", tc.in, got, tc.code, tc.want)
		}
	}
}

// memory.put with an idempotency_key writes once however often the call is
// retried (/call here; a model's tool call takes the same argument); the
// key with another record is refused, and another agent's equal key is its own.
func TestMemoryPutIdempotencyKey(t *testing.T) {
	f, _ := openFleet(t, `
agents:
  - name: rover
  - name: desk
`)
	rover, _ := f.Agent("rover")
	desk, _ := f.Agent("desk")
	put := `/call memory.put {"text":"pallet 17 at B2","idempotency_key":"3f2a-1"}`
	var first, again struct {
		ID       string `json:"id"`
		Replayed bool   `json:"replayed"`
	}
	if err := json.Unmarshal([]byte(reply(collect(t, rover, put))), &first); err != nil || first.ID == "" || first.Replayed {
		t.Fatalf("first put = %+v (%v)", first, err)
	}
	if err := json.Unmarshal([]byte(reply(collect(t, rover, put))), &again); err != nil || again.ID != first.ID || !again.Replayed {
		t.Fatalf("retried put = %+v (%v), want the first record %s, replayed", again, err, first.ID)
	}
	if got := strings.Count(reply(collect(t, rover, "/memory recent 10")), "pallet 17 at B2"); got != 1 {
		t.Errorf("the record is stored %d times, want once", got)
	}
	if got := failure(t, rover, `/call memory.put {"text":"pallet 18","idempotency_key":"3f2a-1"}`); got.Code != agent.CodeToolFailed || !strings.Contains(got.Error, "invalid_argument") || !strings.Contains(got.Error, "reused") {
		t.Errorf("key reused with another record → %+v, want invalid_argument naming the reuse", got)
	}
	var other struct{ ID string }
	if err := json.Unmarshal([]byte(reply(collect(t, desk, put))), &other); err != nil || other.ID == "" || other.ID == first.ID {
		t.Errorf("desk's put with rover's key = %+v (%v), want a record of its own", other, err)
	}
}

// memory.min_free reaches the store: a threshold above the disk's free
// space refuses writes, naming it (and reads go on).
func TestMemoryMinFree(t *testing.T) {
	f, _ := openFleet(t, `
agents:
  - name: rover
    memory: {min_free: 1000000TB}
`)
	a, _ := f.Agent("rover")
	got := failure(t, a, `/call memory.put {"text":"battery at 40%"}`)
	if !strings.Contains(got.Error, "below the 888.2 TiB") && !strings.Contains(got.Error, "Config.MinFreeBytes") {
		t.Errorf("put with min_free 1000000TB → %+v, want the store's disk-full refusal naming the threshold", got)
	}
	if got := reply(collect(t, a, "/memory recent 5")); strings.Contains(got, "battery") {
		t.Errorf("/memory recent = %q after a refused put", got)
	}
}

func TestScheduleRunsCommands(t *testing.T) {
	f, _ := openFleet(t, `
agents:
  - name: logger
    schedule:
      - every: 20ms
        input: '/call memory.put {"text":"tick","kind":"reading"}'
`)
	a, _ := f.Agent("logger")
	waitFor(t, func() bool {
		return strings.Contains(reply(collect(t, a, "/memory search tick")), "reading")
	})
}

func hasTool(specs []llm.ToolSpec, name string) bool {
	for _, s := range specs {
		if s.Name == name {
			return true
		}
	}
	return false
}

func turns(t *testing.T, a *agent.Agent) []memory.Record {
	t.Helper()
	var out []memory.Record
	evs := collect(t, a, "/memory recent 50")
	for _, line := range strings.Split(reply(evs), "\n") {
		if strings.Contains(line, " turn ") {
			id, _, _ := strings.Cut(line, " ")
			var r memory.Record
			if err := json.Unmarshal([]byte(reply(collect(t, a, "/memory get "+id))), &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTurnRecallsMemories(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.Reply{Text: "Bay 3."})
	a := modelFleet(t, srv, "")
	for _, cmd := range []string{
		`/call memory.put {"text":"the charger is in bay 3","kind":"fact","key":"charger"}`,
		`/call memory.put {"text":"pallets arrive on tuesdays"}`,
	} {
		if got := reply(collect(t, a, cmd)); !strings.Contains(got, `"id"`) {
			t.Fatalf("%s → %s", cmd, got)
		}
	}
	if got := reply(collect(t, a, "/memory search charger")); !strings.Contains(got, "bay 3") || strings.Contains(got, "pallets") {
		t.Errorf("/memory search charger = %q", got)
	}
	collect(t, a, "where is the charger?")
	system := srv.Requests()[0].Messages[0]
	if system.Role != llm.RoleSystem || !strings.Contains(system.Content, "the charger is in bay 3") {
		t.Errorf("system prompt did not recall the fact: %q", system.Content)
	}
	if got := failure(t, a, `/call memory.search {"query":"charger","namespace":"agent/other"}`); got.Code != agent.CodeDenied {
		t.Errorf("search outside the grants = %+v", got)
	}
}

// TestBuiltinToolsNarrowed: `tools: [clock]` offers the model the clock
// alone, `tools: []` no built-in tool, and no tools key all of them.
func TestBuiltinToolsNarrowed(t *testing.T) {
	for _, tt := range []struct {
		tools string
		want  []string
	}{
		{"", []string{"agent_status", "clock", "memory_put", "memory_search"}}, // names on the wire
		{"tools: [clock]", []string{"clock"}},
		{"tools: []", nil},
	} {
		srv := llmtest.NewServer(t, llmtest.Reply{Text: "Done."})
		f, _ := openFleet(t, fmt.Sprintf("name: scout\nmodel: {base_url: %q, model: m}\n%s\n", srv.URL, tt.tools))
		a, err := f.Agent("scout")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Ask(t.Context(), agent.Input{Text: "hello"}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, spec := range srv.Requests()[0].Tools {
			got = append(got, spec.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: the model was offered %q, want %q", tt.tools, got, tt.want)
		}
	}
}

// TestRecallLeavesOutWeakAndRepeatedMemories: a turn's context holds the
// memories that share the input's rare word, each text once, and not the
// ones that share only a word every memory has (the one-shot turns of the
// peers harness: "ping <i>").
func TestRecallLeavesOutWeakAndRepeatedMemories(t *testing.T) {
	var inputs []string
	for i := range 30 {
		inputs = append(inputs, fmt.Sprintf("ping %d", 8+i))
		if i%10 == 0 {
			inputs = append(inputs, "ping 7")
		}
	}
	inputs = append(inputs, "ping 7")
	replies := make([]llmtest.Reply, len(inputs))
	for i := range replies {
		replies[i] = llmtest.Reply{Text: "done"}
	}
	srv := llmtest.NewServer(t, replies...)
	a := modelFleet(t, srv, "")
	for _, in := range inputs {
		if _, err := a.Ask(t.Context(), agent.Input{Text: in, OneShot: true}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.Requests()
	system := reqs[len(reqs)-1].Messages[0].Content
	if n := strings.Count(system, "] ping 7 "); n != 1 {
		t.Errorf("system prompt recalls the turn of ping 7 %d times, want once:\n%s", n, system)
	}
	if n := strings.Count(system, "] ping "); n != 1 {
		t.Errorf("system prompt recalls %d turns, want only ping 7's: the others share only ping with the input:\n%s", n, system)
	}
}

// TestConversationSurvivesRestart: the turns a turn sees come from memory
// after a restart, not only from RAM.
func TestConversationSurvivesRestart(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.Reply{Text: "Noted: bay 3."}, llmtest.Reply{Text: "Bay 3."})
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.yaml")
	yaml := fmt.Sprintf("name: scout\nmodel: {base_url: %q, model: m}\n", srv.URL)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range []string{"the charger is in bay 3", "where is the charger?"} {
		f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data")})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := f.Agent("scout")
		collect(t, a, text)
		if err := f.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			msgs := srv.Requests()[1].Messages
			if len(msgs) < 4 || msgs[1].Content != "the charger is in bay 3" || msgs[2].Content != "Noted: bay 3." {
				t.Errorf("after restart the conversation was %+v", msgs)
			}
		}
	}
}

// TestOneShotStandsAlone: a one-shot input neither sees the conversation
// nor joins it — also after a restart, which reads the conversation back
// from the stored turns — and its turn is stored like any other.
func TestOneShotStandsAlone(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.Reply{Text: "Noted: bay 3."}, llmtest.Reply{Text: "Pong."}, llmtest.Reply{Text: "Bay 3."}, llmtest.Reply{Text: "Still bay 3."})
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("name: scout\nmodel: {base_url: %q, model: m}\n", srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	open := func() (*agent.Fleet, *agent.Agent) {
		f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data")})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := f.Agent("scout")
		return f, a
	}
	f, a := open()
	ask := func(in agent.Input) {
		t.Helper()
		if _, err := a.Ask(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	ask(agent.Input{Text: "the charger is in bay 3"})
	ask(agent.Input{Text: "ping", OneShot: true})
	ask(agent.Input{Text: "where is the charger?"})
	if err := f.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	f, a = open()
	ask(agent.Input{Text: "and now?"})
	if err := f.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var contents [][]string
	for _, r := range srv.Requests() {
		var c []string
		for _, m := range r.Messages[1:] { // after the system prompt
			c = append(c, m.Content)
		}
		contents = append(contents, c)
	}
	want := [][]string{
		{"the charger is in bay 3"},
		{"ping"},
		{"the charger is in bay 3", "Noted: bay 3.", "where is the charger?"},
		{"the charger is in bay 3", "Noted: bay 3.", "where is the charger?", "Bay 3.", "and now?"},
	}
	if !reflect.DeepEqual(contents, want) {
		t.Errorf("the model saw %q, want %q", contents, want)
	}
	db, err := memory.Open(t.Context(), memory.Config{Dir: filepath.Join(dir, "data", "memory")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var oneShot int
	for r, err := range db.Query(t.Context(), memory.Query{Namespace: "agent/scout", Kinds: []memory.Kind{memory.KindTurn}}) {
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(r.Data), `"one_shot":true`) {
			oneShot++
		}
	}
	if oneShot != 1 {
		t.Errorf("%d stored turns are one-shot, want 1", oneShot)
	}
}

// TestObservationWakesDigitalAgent: a robot's observation in shared memory
// starts a turn of the digital agent that watches for it.
func TestObservationWakesDigitalAgent(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.Reply{Text: "Rerouting around dock B."})
	f, _ := openFleet(t, fmt.Sprintf(`
agents:
  - name: rover
    role: robot
    memory: {read: [agent/rover, fleet], write: [agent/rover, fleet]}
  - name: dispatcher
    model: {base_url: %q, model: m}
    memory: {read: [agent/dispatcher, fleet], write: [agent/dispatcher, fleet]}
    wake:
      - namespace: fleet
        kinds: [observation]
`, srv.URL))
	rover, _ := f.Agent("rover")
	dispatcher, _ := f.Agent("dispatcher")
	collect(t, rover, `/call memory.put {"text":"obstacle at dock B","namespace":"fleet","kind":"reading"}`)
	collect(t, rover, `/call memory.put {"text":"obstacle at dock B","namespace":"fleet"}`)
	waitFor(t, func() bool { return dispatcher.Status().Turns == 1 })
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("dispatcher made %d model calls, want 1 (the reading must not wake it)", len(reqs))
	}
	last := reqs[0].Messages[len(reqs[0].Messages)-1]
	if !strings.Contains(last.Content, "[agent rover] new observation in fleet from rover: obstacle at dock B") {
		t.Errorf("wake input = %q", last.Content)
	}
}

// TestHybridRecallThroughAnAgent: with memory.embeddings configured the
// fleet's recall index embeds what agents store and searches by vector as
// well as BM25. embedtest speaks the real OpenAI embeddings protocol on
// 127.0.0.1; its vectors are scripted (hashed bags of words).
func TestHybridRecallThroughAnAgent(t *testing.T) {
	emb := embedtest.New(64)
	t.Cleanup(emb.Close)
	f, _ := openFleet(t, fmt.Sprintf(`
name: rover
memory:
  embeddings: {base_url: %q, model: test-embed}
`, emb.URL()))
	a, _ := f.Agent("rover")
	for _, text := range []string{"the charger is in bay 3", "pallets arrive on tuesdays"} {
		collect(t, a, fmt.Sprintf(`/call memory.put {"text":%q}`, text))
	}
	// Vector recall ranks every record; the one that shares words comes first.
	if got := reply(collect(t, a, "/memory search charger")); !strings.Contains(strings.SplitN(got, "\n", 2)[0], "bay 3") {
		t.Errorf("/memory search charger = %q, want the charger first", got)
	}
	if _, inputs := emb.Requests(); inputs < 2 {
		t.Errorf("the embeddings endpoint saw %d texts, want the 2 stored records at least", inputs)
	}
	status := reply(collect(t, a, "/status"))
	for _, want := range []string{"recall: hybrid: bm25 + test-embed (64d)", "(2 with vectors"} {
		if !strings.Contains(status, want) {
			t.Errorf("/status lacks %q:\n%s", want, status)
		}
	}
}
