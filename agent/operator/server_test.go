package operator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/policy"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// admin is the generated token's operator, as depai run passes it.
var admin = []operator.Operator{{Name: "operator", Role: policy.RoleAdmin, Token: testToken}}

// one is an operator list with the token "t".
var one = []operator.Operator{{Name: "operator", Role: policy.RoleAdmin, Token: "t"}}

// startServer serves agents on a free loopback port until the test ends.
func startServer(t testing.TB, agents []operator.Agent) *operator.Server {
	t.Helper()
	return startServerConfig(t, operator.Config{Addr: "127.0.0.1:0", Agents: agents, Operators: admin})
}

// startServerConfig serves cfg until the test ends, and wants Shutdown and
// Serve to end without an error.
func startServerConfig(t testing.TB, cfg operator.Config) *operator.Server {
	t.Helper()
	srv, err := operator.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// request sends a raw HTTP request and returns the status and body.
func request(t *testing.T, srv *operator.Server, method, path, auth, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+srv.Addr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// decodeError checks that body is a JSON error with code and returns its
// message.
func decodeError(t *testing.T, body, code string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if e.Error.Code != code {
		t.Errorf("error code = %q, want %q (body %s)", e.Error.Code, code, body)
	}
	if e.Error.Message == "" {
		t.Errorf("error body %s has no message", body)
	}
	return e.Error.Message
}

func TestUnauthorized(t *testing.T) {
	srv := startServer(t, newScriptedFleet("rover-1").Agents())
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/agents", ""},
		{"GET", "/v1/agents/rover-1", ""},
		{"POST", "/v1/agents/rover-1/messages", `{"text":"/status"}`},
		{"GET", "/no/such/route", ""},
	}
	auths := []struct{ name, header, wantMsg string }{
		{"none", "", "missing bearer token"},
		{"wrong", "Bearer " + strings.Repeat("f", 64), "wrong bearer token"},
		{"prefix of the token", "Bearer " + testToken[:10], "wrong bearer token"},
		{"token plus more", "Bearer " + testToken + "0", "wrong bearer token"},
		{"empty bearer", "Bearer ", "missing bearer token"},
		{"lower-case scheme, wrong token", "bearer x", "wrong bearer token"},
		{"basic scheme", "Basic " + testToken, "missing bearer token"},
		{"no scheme", testToken, "missing bearer token"},
	}
	for _, rt := range routes {
		for _, a := range auths {
			t.Run(rt.method+" "+rt.path+"/"+a.name, func(t *testing.T) {
				resp, body := request(t, srv, rt.method, rt.path, a.header, rt.body)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status = %d, want 401 (body %s)", resp.StatusCode, body)
				}
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
				}
				if msg := decodeError(t, body, operator.CodeUnauthorized); !strings.Contains(msg, a.wantMsg) {
					t.Errorf("message = %q, want it to contain %q", msg, a.wantMsg)
				}
			})
		}
	}
	fleet := newScriptedFleet("rover-1")
	srv = startServer(t, fleet.Agents())
	request(t, srv, "POST", "/v1/agents/rover-1/messages", "Bearer nope", `{"text":"hello"}`)
	if got := fleet.agents[0].lastInput(); got.Text != "" {
		t.Errorf("an unauthenticated message reached the agent: %+v", got)
	}
}

func TestAgents(t *testing.T) {
	srv := startServer(t, openFleet(t, `
agents:
  - {name: rover-1, role: robot}
  - {name: dispatcher, role: digital}
`))
	auth := "Bearer " + testToken

	resp, body := request(t, srv, "GET", "/v1/agents", auth, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/agents: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var list []agent.Status
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "rover-1" || list[1].Name != "dispatcher" || list[0].State != "idle" || list[0].Role != "robot" {
		t.Errorf("agents = %+v, want rover-1 (robot) then dispatcher, idle", list)
	}

	resp, body = request(t, srv, "GET", "/v1/agents/dispatcher", auth, "")
	var st agent.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || resp.StatusCode != 200 || st.Name != "dispatcher" || st.Model != "none" {
		t.Errorf("GET /v1/agents/dispatcher: %d %s (%v)", resp.StatusCode, body, err)
	}
}

func TestBadRequests(t *testing.T) {
	srv := startServer(t, newScriptedFleet("a", "b").Agents())
	auth := "Bearer " + testToken
	tests := []struct {
		name         string
		method, path string
		body         string
		status       int
		code         string
		msg          string // a substring of the message
	}{
		{"unknown agent status", "GET", "/v1/agents/x", "", 404, operator.CodeUnknownAgent, `no agent "x"; agents: a, b`},
		{"unknown agent message", "POST", "/v1/agents/x/messages", `{"text":"hi"}`, 404, operator.CodeUnknownAgent, `no agent "x"; agents: a, b`},
		{"not JSON", "POST", "/v1/agents/a/messages", `text=hi`, 400, operator.CodeBadJSON, "invalid character"},
		{"truncated JSON", "POST", "/v1/agents/a/messages", `{"text":"hi"`, 400, operator.CodeBadJSON, "unexpected EOF"},
		{"empty body", "POST", "/v1/agents/a/messages", ``, 400, operator.CodeBadJSON, "empty body"},
		{"unknown field", "POST", "/v1/agents/a/messages", `{"txt":"hi"}`, 400, operator.CodeBadJSON, `unknown field "txt"`},
		{"wrong type", "POST", "/v1/agents/a/messages", `{"text":42}`, 400, operator.CodeBadJSON, "text"},
		{"array", "POST", "/v1/agents/a/messages", `["hi"]`, 400, operator.CodeBadJSON, "array"},
		{"two objects", "POST", "/v1/agents/a/messages", `{"text":"a"}{"text":"b"}`, 400, operator.CodeBadJSON, "data after the JSON object"},
		{"missing text", "POST", "/v1/agents/a/messages", `{}`, 400, operator.CodeMissingText, `"text" is missing or empty`},
		{"blank text", "POST", "/v1/agents/a/messages", `{"text":"  \n"}`, 400, operator.CodeMissingText, `"text" is missing or empty`},
		{"too large", "POST", "/v1/agents/a/messages", `{"text":"` + strings.Repeat("x", operator.DefaultMaxBodyBytes) + `"}`, 413, operator.CodeTooLarge, "larger than"},
		{"wrong method on messages", "GET", "/v1/agents/a/messages", "", 405, operator.CodeMethodNotAllowed, "use POST"},
		{"wrong method on agents", "DELETE", "/v1/agents", "", 405, operator.CodeMethodNotAllowed, "use GET"},
		{"no route", "GET", "/v2/agents", "", 404, operator.CodeNotFound, "no route GET /v2/agents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := request(t, srv, tt.method, tt.path, auth, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %.200s)", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if msg := decodeError(t, body, tt.code); !strings.Contains(msg, tt.msg) {
				t.Errorf("message = %q, want it to contain %q", msg, tt.msg)
			}
		})
	}
}

// TestStreamWire reads a turn of a real agent off the wire as any SSE client
// would, without the package's client, to pin the format. The agent's model
// is llmtest (the protocol is real, the replies scripted): a call of the
// built-in clock tool, then a two-line answer streamed in two deltas.
func TestStreamWire(t *testing.T) {
	const answer = "The time is noon.\nMulti-line."
	model := llmtest.NewServer(t,
		llmtest.Reply{ToolCalls: []llm.ToolCall{{Name: "clock", Arguments: "{}"}}},
		llmtest.Reply{Text: answer, ChunkSize: 16},
	)
	srv := startServer(t, openFleet(t, fmt.Sprintf(`
name: rover-1
model: {base_url: %q, model: test-model}
`, model.URL)))
	resp, body := request(t, srv, "POST", "/v1/agents/rover-1/messages", "Bearer "+testToken, `{"text":"what time is it?"}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if reqs := model.Requests(); len(reqs) == 0 || reqs[0].Messages[len(reqs[0].Messages)-1].Content != "what time is it?" {
		t.Errorf("the model was not sent the message: %+v", reqs)
	}
	var types []string
	var reply, call agent.Event
	turnIDs := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	var typ string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
			types = append(types, typ)
		case strings.HasPrefix(line, "data: "):
			var ev agent.Event
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
				t.Fatalf("data line %q: %v", line, err)
			}
			if string(ev.Type) != typ {
				t.Errorf("event: %s carries an event of type %s", typ, ev.Type)
			}
			turnIDs[ev.TurnID] = true
			switch ev.Type {
			case agent.EventReply:
				reply = ev
			case agent.EventToolCall:
				call = ev
			}
		case line == "":
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	if got, want := strings.Join(types, ","), "tool_call,tool_result,delta,delta,reply,stored"; got != want {
		t.Errorf("event types = %s, want %s", got, want)
	}
	if call.Tool != "clock" || call.CallID == "" {
		t.Errorf("tool call = %+v, want a call of clock with an id", call)
	}
	if reply.Text != answer || len(turnIDs) != 1 || reply.TurnID == "" {
		t.Errorf("reply = %+v; turn ids %v, want one", reply, turnIDs)
	}
}

func TestJSONAnswer(t *testing.T) {
	fleet := newScriptedFleet("rover-1")
	srv := startServer(t, fleet.Agents())
	auth := "Bearer " + testToken
	resp, body := request(t, srv, "POST", "/v1/agents/rover-1/messages", auth, `{"text":"stream"}`, "Accept", "application/json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q, body %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if in := fleet.agents[0].lastInput(); in.From != "operator" || in.Role != policy.RoleAdmin || in.Source != agent.SourceOperator || in.Text != "stream" {
		t.Errorf("agent got input %+v", in)
	}
	var res operator.TurnResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if res.Reply.Type != agent.EventReply || res.Reply.Text != "The time is noon.\nMulti-line." {
		t.Errorf("reply = %+v", res.Reply)
	}
	var types []string
	for _, ev := range res.Events {
		types = append(types, string(ev.Type))
	}
	if got, want := strings.Join(types, ","), "tool_call,tool_result,reply"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}

	resp, body = request(t, srv, "POST", "/v1/agents/rover-1/messages", auth, `{"text":"fail"}`, "Accept", "application/json")
	if resp.StatusCode != 500 {
		t.Fatalf("failed turn: status %d, want 500 (body %s)", resp.StatusCode, body)
	}
	if msg := decodeError(t, body, operator.CodeTurnFailed); !strings.Contains(msg, "returned 500") {
		t.Errorf("message = %q", msg)
	}
}

func TestClient(t *testing.T) {
	srv := startServer(t, newScriptedFleet("rover-1", "dispatcher").Agents())
	ctx := t.Context()
	c := operator.NewClient(srv.Addr(), testToken)

	list, err := c.Agents(ctx)
	if err != nil || len(list) != 2 || list[1].Name != "dispatcher" {
		t.Fatalf("Agents = %+v, %v", list, err)
	}
	st, err := c.Agent(ctx, "rover-1")
	if err != nil || st.Name != "rover-1" {
		t.Fatalf("Agent = %+v, %v", st, err)
	}

	var deltas strings.Builder
	var types []string
	for ev, err := range c.Send(ctx, "rover-1", "stream") {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, string(ev.Type))
		if ev.Type == agent.EventDelta {
			deltas.WriteString(ev.Text)
		}
	}
	if got, want := strings.Join(types, ","), "delta,delta,tool_call,tool_result,reply"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
	if deltas.String() != "The time is noon." {
		t.Errorf("deltas = %q", deltas.String())
	}

	var last error
	var n int
	for _, err := range c.Send(ctx, "rover-1", "fail") {
		n++
		last = err
	}
	var oe *operator.Error
	if n != 2 || !errors.As(last, &oe) || oe.Code != operator.CodeTurnFailed || !strings.Contains(oe.Message, "returned 500") {
		t.Errorf("failing turn: %d events, last error %v; want a delta then a turn_failed error", n, last)
	}

	tests := []struct {
		name   string
		client *operator.Client
		agent  string
		status int
		code   string
	}{
		{"unknown agent", c, "nobody", 404, operator.CodeUnknownAgent},
		{"wrong token", operator.NewClient("http://"+srv.Addr()+"/", "wrong"), "rover-1", 401, operator.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, err := range tt.client.Send(ctx, tt.agent, "hi") {
				if !errors.As(err, &oe) || oe.Status != tt.status || oe.Code != tt.code {
					t.Errorf("Send error = %v, want %d %s", err, tt.status, tt.code)
				}
			}
			if _, err := tt.client.Agent(ctx, tt.agent); !errors.As(err, &oe) || oe.Status != tt.status {
				t.Errorf("Agent error = %v, want %d", err, tt.status)
			}
		})
	}
}

func TestClientServerDown(t *testing.T) {
	srv := startServer(t, newScriptedFleet("a").Agents())
	addr := srv.Addr()
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := operator.NewClient(addr, testToken).Agents(t.Context())
	if err == nil || !strings.Contains(err.Error(), "is depai run running there?") {
		t.Errorf("Agents against a stopped server: %v", err)
	}
}

// TestDisconnectCancelsTurn: a client that goes away mid-turn cancels the
// turn's context on the server.
func TestDisconnectCancelsTurn(t *testing.T) {
	for _, how := range []string{"break", "cancel"} {
		t.Run(how, func(t *testing.T) {
			fleet := newScriptedFleet("a")
			srv := startServer(t, fleet.Agents())
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			c := operator.NewClient(srv.Addr(), testToken)
			for ev, err := range c.Send(ctx, "a", "block") {
				if err != nil {
					if how == "cancel" && errors.Is(err, context.Canceled) {
						break
					}
					t.Fatal(err)
				}
				if ev.Type != agent.EventDelta {
					t.Fatalf("first event %+v, want a delta", ev)
				}
				<-fleet.agents[0].started
				if how == "break" {
					break
				}
				cancel()
			}
			select {
			case <-fleet.agents[0].cancelled:
			case <-time.After(10 * time.Second):
				t.Fatal("the turn's context was not cancelled after the client went away")
			}
		})
	}
}

// TestShutdownCancelsStreamingTurn: Shutdown waits for a streaming turn only
// as long as its ctx allows, then cancels it and returns.
func TestShutdownCancelsStreamingTurn(t *testing.T) {
	fleet := newScriptedFleet("a")
	srv, err := operator.NewServer(operator.Config{Addr: "127.0.0.1:0", Agents: fleet.Agents(), Operators: admin})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	got := make(chan error, 1)
	go func() {
		var last error
		for _, err := range operator.NewClient(srv.Addr(), testToken).Send(context.Background(), "a", "block") {
			last = err
		}
		got <- last
	}()
	<-fleet.agents[0].started

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want a deadline error (a turn was still streaming)", err)
	}
	select {
	case <-fleet.agents[0].cancelled:
	default:
		t.Error("Shutdown returned before the streaming turn was cancelled")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after Shutdown", err)
	}
	// The turn's last word (here the error it ended with) reaches the
	// client before the connection closes.
	var oe *operator.Error
	if err := <-got; !errors.As(err, &oe) || oe.Code != operator.CodeTurnFailed || !strings.Contains(oe.Message, "context canceled") {
		t.Errorf("client saw %v, want the turn's own error event", err)
	}
}

func TestNewServerConfig(t *testing.T) {
	fleet := newScriptedFleet("a")
	tests := []struct {
		name string
		cfg  operator.Config
		err  string // "" for success
	}{
		{"no agents", operator.Config{Addr: "127.0.0.1:0", Operators: one}, "Config.Agents is required"},
		{"no token", operator.Config{Addr: "127.0.0.1:0", Agents: fleet.Agents()}, "Config.Operators is required"},
		{"all interfaces", operator.Config{Addr: "0.0.0.0:0", Agents: fleet.Agents(), Operators: one}, `host "0.0.0.0" is not a loopback address`},
		{"a name", operator.Config{Addr: "example.com:0", Agents: fleet.Agents(), Operators: one}, `host "example.com" is not a loopback address`},
		{"no port", operator.Config{Addr: "127.0.0.1", Agents: fleet.Agents(), Operators: one}, "expected host:port"},
		{"port only", operator.Config{Addr: ":0", Agents: fleet.Agents(), Operators: one}, ""},
		{"ipv4 loopback", operator.Config{Addr: "127.0.0.1:0", Agents: fleet.Agents(), Operators: one}, ""},
		{"localhost", operator.Config{Addr: "localhost:0", Agents: fleet.Agents(), Operators: one}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := operator.NewServer(tt.cfg)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("NewServer err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") && !strings.HasPrefix(srv.Addr(), "[::1]:") {
				t.Errorf("Addr = %q, want a loopback address", srv.Addr())
			}
			if err := srv.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			// Shut down without ever serving: the port is free again.
			again, err := operator.NewServer(operator.Config{Addr: srv.Addr(), Agents: fleet.Agents(), Operators: one})
			if err != nil {
				t.Fatalf("the port is still taken after Shutdown: %v", err)
			}
			again.Shutdown(t.Context())
		})
	}

	srv := startServer(t, fleet.Agents())
	if _, err := operator.NewServer(operator.Config{Addr: srv.Addr(), Agents: fleet.Agents(), Operators: one}); err == nil || !strings.Contains(err.Error(), "listen on "+srv.Addr()) {
		t.Errorf("NewServer on a port in use: %v", err)
	}
}
