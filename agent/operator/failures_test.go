package operator_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/policy"
)

func serve(t *testing.T, cfg operator.Config, before ...func(*operator.Server)) *operator.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Operators == nil {
		cfg.Operators = admin
	}
	srv, err := operator.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
	})
	return srv
}

// TestErrorEvents: a turn that ends with the agent's error event is an SSE
// error event with its code, a JSON error with the code's status, and an
// *operator.Error with the code from the client.
func TestErrorEvents(t *testing.T) {
	srv := startServer(t, newScriptedFleet("a").Agents())
	for code, status := range map[string]int{
		agent.CodeModelUnavailable: 502, agent.CodeModelEmpty: 502, agent.CodeToolFailed: 502,
		agent.CodeModelTimeout: 504,
		agent.CodeEStop:        409, agent.CodeDenied: 409, agent.CodeCancelled: 409,
		operator.CodeForbidden: 403,
		agent.CodeBusy:         429,
		agent.CodeBound:        422,
		agent.CodeInvalid:      400,
		agent.CodeUnavailable:  503,
		"something_new":        500,
	} {
		t.Run(code, func(t *testing.T) {
			body := fmt.Sprintf(`{"text":"error %s"}`, code)
			resp, got := request(t, srv, "POST", "/v1/agents/a/messages", "Bearer "+testToken, body, "Accept", "application/json")
			if resp.StatusCode != status {
				t.Errorf("JSON: status %d, want %d (%s)", resp.StatusCode, status, got)
			}
			if msg := decodeError(t, got, code); msg != "scripted failure: "+code {
				t.Errorf("JSON: message %q", msg)
			}

			resp, got = request(t, srv, "POST", "/v1/agents/a/messages", "Bearer "+testToken, body)
			want := fmt.Sprintf("event: error\ndata: {\"type\":\"error\",\"turn_id\":\"turn-1\",\"error\":\"scripted failure: %s\",\"code\":\"%s\"}\n\n", code, code)
			if resp.StatusCode != 200 || !strings.HasSuffix(got, want) {
				t.Errorf("SSE: status %d, stream\n%s\nwant it to end with\n%s", resp.StatusCode, got, want)
			}

			var last error
			n := 0
			for _, err := range operator.NewClient(srv.Addr(), testToken).Send(t.Context(), "a", "error "+code) {
				n++
				last = err
			}
			var oe *operator.Error
			if n != 2 || !errors.As(last, &oe) || oe.Code != code || oe.Message != "scripted failure: "+code {
				t.Errorf("client: %d events, last error %v; want a delta then an *operator.Error with code %s", n, last, code)
			}
		})
	}
	if operator.StatusOf(agent.CodeModelTimeout) != http.StatusGatewayTimeout {
		t.Error("StatusOf(model_timeout) is not 504")
	}
}

// TestKeepAlive: a turn that runs long sends comment lines, which the
// client skips.
func TestKeepAlive(t *testing.T) {
	fleet := newScriptedFleet("a")
	srv := serve(t, operator.Config{Agents: fleet.Agents(), KeepAlive: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+srv.Addr()+"/v1/agents/a/messages", strings.NewReader(`{"text":"block"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-fleet.agents[0].started
	sc := bufio.NewScanner(resp.Body)
	keepAlives := 0
	deadline := time.Now().Add(10 * time.Second)
	for keepAlives < 3 && sc.Scan() {
		if sc.Text() == ": keep-alive" {
			keepAlives++
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if keepAlives < 3 {
		t.Errorf("%d keep-alive comments while the turn ran; want one every 20ms", keepAlives)
	}
}

// TestOperatorsAndRoles: each token is its operator; the agent gets the
// operator's name and role with the message, whatever the body says.
func TestOperatorsAndRoles(t *testing.T) {
	fleet := newScriptedFleet("a")
	ops := []operator.Operator{
		{Name: "operator", Role: policy.RoleAdmin, Token: testToken},
		{Name: "alice", Role: policy.RoleViewer, Token: "alice-token"},
		{Name: "bob", Role: policy.RoleOperator, Token: "bob-token"},
	}
	srv := serve(t, operator.Config{Agents: fleet.Agents(), Operators: ops})
	for _, op := range ops {
		for range operator.NewClient(srv.Addr(), op.Token).Send(t.Context(), "a", "hi") {
		}
		in := fleet.agents[0].lastInput()
		if in.From != op.Name || in.Role != op.Role || in.Source != agent.SourceOperator {
			t.Errorf("token of %s: the agent got %+v", op.Name, in)
		}
	}
	resp, body := request(t, srv, "POST", "/v1/agents/a/messages", "Bearer alice-token", `{"text":"hi","from":"operator"}`)
	if resp.StatusCode != 400 || !strings.Contains(body, `unknown field \"from\"`) {
		t.Errorf("a body naming its sender: %d %s; want 400 (the token says who sends)", resp.StatusCode, body)
	}

	for _, tc := range []struct {
		name string
		ops  []operator.Operator
		want string
	}{
		{"none", []operator.Operator{}, "Config.Operators is required"},
		{"no name", []operator.Operator{{Role: policy.RoleAdmin, Token: "x"}}, "empty name"},
		{"duplicate", []operator.Operator{{Name: "a", Role: policy.RoleAdmin, Token: "x"}, {Name: "a", Role: policy.RoleViewer, Token: "y"}}, `duplicate name "a"`},
		{"bad role", []operator.Operator{{Name: "a", Role: "root", Token: "x"}}, `invalid role "root"`},
		{"no token", []operator.Operator{{Name: "a", Role: policy.RoleAdmin, Token: " "}}, "empty token"},
		{"shared token", []operator.Operator{{Name: "a", Role: policy.RoleAdmin, Token: "x"}, {Name: "b", Role: policy.RoleViewer, Token: "x"}}, `operators "a" and "b" have the same token`},
	} {
		_, err := operator.NewServer(operator.Config{Addr: "127.0.0.1:0", Agents: fleet.Agents(), Operators: tc.ops})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewServer = %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestFailedAuthLogRateLimited: the hole was a log line per unauthenticated
// request (a flood wrote 7.4 MB in 3 s). Now a window gets one line at once
// and one with the count of the rest.
func TestFailedAuthLogRateLimited(t *testing.T) {
	var logs lockedWriter
	const window = 200 * time.Millisecond
	srv := serve(t, operator.Config{Agents: newScriptedFleet("a").Agents(), Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		func(s *operator.Server) { operator.SetAuthLogWindow(s, window) })
	const n = 300
	start := time.Now()
	client := &http.Client{}
	for range n {
		req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/v1/agents", nil)
		req.Header.Set("Authorization", "Bearer wrong")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	windows := int(time.Since(start)/window) + 1
	time.Sleep(2 * window) // the last window's count is logged as it ends
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	logged := 0
	for _, l := range lines {
		switch {
		case strings.Contains(l, `msg="operator: unauthorized request"`):
			logged++
		case strings.Contains(l, `msg="operator: more unauthorized requests"`):
			var c int
			if _, err := fmt.Sscanf(l[strings.Index(l, "count="):], "count=%d", &c); err != nil {
				t.Fatalf("no count in %q", l)
			}
			logged += c
		default:
			t.Errorf("unexpected log line %q", l)
		}
	}
	if len(lines) > 2*windows || logged != n {
		t.Errorf("%d failed requests over %d windows: %d log lines accounting for %d; want at most %d lines accounting for all", n, windows, len(lines), logged, 2*windows)
	}
}

// TestBodyDeadline: a client trickling its body cannot hold a handler: it
// gets 408 once the body deadline passes, and the agent never sees it.
func TestBodyDeadline(t *testing.T) {
	fleet := newScriptedFleet("a")
	srv := serve(t, operator.Config{Agents: fleet.Agents(), BodyTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"text":"` + strings.Repeat("x", 80) + `"}`
	fmt.Fprintf(c, "POST /v1/agents/a/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", testToken, len(body))
	start := time.Now()
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	var got string
trickle:
	for i := 0; ; i++ {
		select {
		case got = <-answered:
			break trickle
		case <-time.After(50 * time.Millisecond):
			if i < len(body) {
				c.Write([]byte{body[i]})
			}
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("no answer 10s into a trickled body")
		}
	}
	took := time.Since(start)
	if !strings.HasPrefix(got, "408 ") || !strings.Contains(got, operator.CodeBodyTimeout) {
		t.Errorf("answer %q; want 408 %s", got, operator.CodeBodyTimeout)
	}
	if took > 2*time.Second {
		t.Errorf("answered after %v; want about the 200ms body deadline", took)
	}
	if in := fleet.agents[0].lastInput(); in.Text != "" {
		t.Errorf("the agent got %+v from a body that never arrived", in)
	}
}

// TestBodyDeadlineDoesNotCutTurns: the body deadline is cleared once the
// body is in, so a turn streams past it.
func TestBodyDeadlineDoesNotCutTurns(t *testing.T) {
	fleet := newScriptedFleet("a")
	srv := serve(t, operator.Config{Agents: fleet.Agents(), BodyTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for range operator.NewClient(srv.Addr(), testToken).Send(ctx, "a", "block") {
		}
	}()
	<-fleet.agents[0].started
	select {
	case <-fleet.agents[0].cancelled:
		t.Fatal("the turn was cancelled when the body deadline passed")
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	<-fleet.agents[0].cancelled
}
