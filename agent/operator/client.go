package operator

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/operator/internal/sse"
)

// maxEventBytes bounds one streamed event on the client side; a tool result
// larger than this is a broken server, not something to buffer.
const maxEventBytes = 8 << 20

// Client speaks the operator API of a running `depai run`.
type Client struct {
	base  string // "http://127.0.0.1:7700"
	token string
	http  *http.Client
}

// NewClient returns a client for the API at addr ("127.0.0.1:7700" or a full
// "http://…" URL) that authenticates with token.
func NewClient(addr, token string) *Client {
	base := strings.TrimSuffix(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	// No client timeout: a turn streams for as long as its bounds allow;
	// callers bound it with ctx.
	return &Client{base: base, token: token, http: &http.Client{}}
}

// Agents lists the fleet's agents and their status, in config order.
func (c *Client) Agents(ctx context.Context) ([]agent.Status, error) {
	var out []agent.Status
	if err := c.getJSON(ctx, "/v1/agents", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Agent returns one agent's status.
func (c *Client) Agent(ctx context.Context, name string) (agent.Status, error) {
	var out agent.Status
	err := c.getJSON(ctx, "/v1/agents/"+url.PathEscape(name), &out)
	return out, err
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxEventBytes)).Decode(v); err != nil {
		return fmt.Errorf("operator: GET %s: decoding response: %w", path, err)
	}
	return nil
}

// do sends req with the token and turns a non-2xx answer into an *Error.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("operator: %s %s: %w (is depai run running there?)", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error == nil || eb.Error.Message == "" {
		return nil, &Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode),
			Message: fmt.Sprintf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, abbreviate(strings.TrimSpace(string(body)), 200))}
	}
	eb.Error.Status = resp.StatusCode
	return nil, eb.Error
}

// Send sends text (a message or an operator command) to the named agent and
// yields the turn's events as they arrive; the last is the reply (a
// command's) or, for a turn that answered, agent.EventStored once its record
// is durable. A failure
// is yielded as the error of the last pair: a turn that failed (the stream's
// error event) or a refused request is an *Error with the code, such as
// agent.CodeModelTimeout. Breaking out of the loop, or cancelling ctx, ends the request and
// with it the turn.
func (c *Client) Send(ctx context.Context, agentName, text string) iter.Seq2[agent.Event, error] {
	return func(yield func(agent.Event, error) bool) {
		err := c.send(ctx, agentName, text, yield)
		if err != nil {
			yield(agent.Event{}, err)
		}
	}
}

func (c *Client) send(ctx context.Context, agentName, text string, yield func(agent.Event, error) bool) error {
	body, err := json.Marshal(Message{Text: text})
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	path := "/v1/agents/" + url.PathEscape(agentName) + "/messages"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("operator: POST %s: got Content-Type %q, want text/event-stream", path, resp.Header.Get("Content-Type"))
	}
	r := sse.NewReader(resp.Body, maxEventBytes)
	replied := false
	for {
		se, err := r.Next()
		if err != nil {
			if replied && errors.Is(err, io.EOF) {
				return nil // a command's reply is its last event
			}
			if ctx.Err() != nil {
				return fmt.Errorf("operator: %w", context.Cause(ctx))
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("operator: POST %s: the stream ended before the reply: %w", path, err)
		}
		switch agent.EventType(se.Type) {
		case agent.EventDelta, agent.EventToolCall, agent.EventToolResult, agent.EventReply, agent.EventStored, agent.EventError:
		default:
			continue // an event type this client does not know yet
		}
		var ev agent.Event
		if err := json.Unmarshal([]byte(se.Data), &ev); err != nil {
			return fmt.Errorf("operator: POST %s: malformed %s event: %w", path, se.Type, err)
		}
		if ev.Type == agent.EventError {
			// The turn failed: its code and message, as the JSON answer
			// would carry them.
			return &Error{Code: cmp.Or(ev.Code, CodeTurnFailed), Message: cmp.Or(ev.Error, "the turn failed")}
		}
		if !yield(ev, nil) {
			return nil
		}
		switch ev.Type {
		case agent.EventReply:
			replied = true
		case agent.EventStored:
			return nil
		}
	}
}
