package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/agent/operator"
)

// TestRealFleet serves a real fleet (badger memory, built-in tools, no
// model) and drives it through the client: commands and a free-text turn.
func TestRealFleet(t *testing.T) {
	srv := startServer(t, openFleet(t, `
agents:
  - name: scout
    role: robot
    memory: {read: [agent/scout], write: [agent/scout]}
  - name: planner
    role: digital
`))
	c := operator.NewClient(srv.Addr(), testToken)

	list, err := c.Agents(t.Context())
	if err != nil || len(list) != 2 || list[0].Name != "scout" || list[0].Model != "none" {
		t.Fatalf("Agents = %+v, %v", list, err)
	}

	tests := []struct{ text, want string }{
		{"/status", "scout"},
		{"/tools", "clock"},
		{"/call clock {}", "20"}, // the year of an RFC 3339 time
		{"where are you?", "no model configured"},
		{`/call memory.put {"text":"parked at dock 4"}`, `"id"`},
		{"/memory search dock", "parked at dock 4"},
	}
	for _, tt := range tests {
		var reply agent.Event
		n := 0
		for ev, err := range c.Send(t.Context(), "scout", tt.text) {
			if err != nil {
				t.Fatalf("%s: %v", tt.text, err)
			}
			n++
			reply = ev
		}
		if reply.Type != agent.EventReply || !strings.Contains(reply.Text, tt.want) {
			t.Errorf("%s: last of %d events %+v, want a reply containing %q", tt.text, n, reply, tt.want)
		}
	}

	resp, body := request(t, srv, "POST", "/v1/agents/planner/messages", "Bearer "+testToken, `{"text":"/status"}`, "Accept", "application/json")
	var res operator.TurnResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || resp.StatusCode != 200 || !strings.Contains(res.Reply.Text, "planner") {
		t.Errorf("JSON /status: %d %s (%v)", resp.StatusCode, body, err)
	}
}

// openFleet opens the fleet of a config (badger memory in a temp dir) until
// the test ends and returns its agents.
func openFleet(t *testing.T, yaml string) []operator.Agent {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := agent.Open(t.Context(), cfg, agent.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fleet.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	var agents []operator.Agent
	for _, a := range fleet.Agents() {
		agents = append(agents, a)
	}
	return agents
}

// hungModel accepts connections and reads requests but never answers, as a
// wedged inference server does. It returns the base URL.
func hungModel(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
		}
	})
	return "http://" + ln.Addr().String() + "/v1"
}

// TestHungModelIsAnErrorEvent: the hole was 120 s of silence, then an
// answer-shaped apology with HTTP 200. A hung endpoint now ends the turn
// with an error event (model_timeout) naming the endpoint, soon after the
// first-byte timeout, and a JSON request gets 504.
func TestHungModelIsAnErrorEvent(t *testing.T) {
	url := hungModel(t)
	srv := startServer(t, openFleet(t, fmt.Sprintf(`
name: scout
model: {base_url: %q, model: m, first_byte_timeout: 200ms, timeout: 1s}
`, url)))
	start := time.Now()
	var last agent.Event
	var err error
	for ev, e := range operator.NewClient(srv.Addr(), testToken).Send(t.Context(), "scout", "where are you?") {
		if e != nil {
			err = e
			break
		}
		last = ev
	}
	took := time.Since(start)
	var oe *operator.Error
	if !errors.As(err, &oe) || oe.Code != agent.CodeModelTimeout || !strings.Contains(oe.Message, url+"/chat/completions") {
		t.Fatalf("turn ended with %v (%+v); want a model_timeout error naming %s", err, last, url)
	}
	if took > 3*time.Second {
		t.Errorf("the error came after %v; want it within about the 200ms first-byte timeout", took)
	}
	resp, body := request(t, srv, "POST", "/v1/agents/scout/messages", "Bearer "+testToken, `{"text":"hello?"}`, "Accept", "application/json")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("JSON: %d %s; want 504", resp.StatusCode, body)
	}
	decodeError(t, body, agent.CodeModelTimeout)
}

// TestNonStreamingServerCompletesToolTurn: the hole was an empty reply from
// a server that does not stream tool calls. The adapter asks again without
// streaming, the turn runs the tool and answers.
func TestNonStreamingServerCompletesToolTurn(t *testing.T) {
	model, err := llmtest.Start(llmtest.Config{StreamsNoToolCalls: true, Replies: []llmtest.Reply{
		{ToolCalls: []llm.ToolCall{{Name: "clock", Arguments: "{}"}}},
		{Text: "It is noon."},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	srv := startServer(t, openFleet(t, fmt.Sprintf("name: scout\nmodel: {base_url: %q, model: m}\n", model.URL)))
	var types []string
	var reply agent.Event
	for ev, err := range operator.NewClient(srv.Addr(), testToken).Send(t.Context(), "scout", "what time is it?") {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, string(ev.Type))
		if ev.Type != agent.EventStored {
			reply = ev
		}
	}
	if types[len(types)-1] != string(agent.EventStored) {
		t.Errorf("events %v; want EventStored last", types)
	}
	if reply.Type != agent.EventReply || reply.Text != "It is noon." || !slices.Contains(types, string(agent.EventToolResult)) {
		t.Errorf("events %v ending %+v; want the clock's result, then the reply", types, reply)
	}
	reqs := model.Requests()
	if len(reqs) != 3 || !reqs[0].Stream || reqs[1].Stream || reqs[2].Stream {
		t.Errorf("%d model requests; want streamed, unstreamed (the fallback), unstreamed (learned)", len(reqs))
	}
}
