package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Handler answers the requests sent to an agent. The core implements it:
// the envelope's payload becomes an input of the agent's inbox (with Hops
// as its depth) and the turn's answer is the reply payload. ctx ends when
// the request expires or the node shuts down.
type Handler interface {
	HandleMessage(ctx context.Context, env Envelope) (json.RawMessage, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, env Envelope) (json.RawMessage, error)

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, env Envelope) (json.RawMessage, error) {
	return f(ctx, env)
}

// Agent is a local agent's presence in the fleet: its own NATS connection
// and key, its inbox, its registry card and its side of tasks.
type Agent struct {
	node *Node
	cfg  AgentConfig
	nc   *nats.Conn
	js   jetstream.JetStream

	mu    sync.Mutex // guards card, sub
	card  Card
	sub   *nats.Subscription
	slots chan struct{} // bounds concurrent HandleMessage calls
}

// maxConcurrentRequests bounds the requests one agent serves at once;
// more wait in NATS's pending buffer.
const maxConcurrentRequests = 16

func (n *Node) addAgent(ac AgentConfig) (*Agent, error) {
	nc, err := n.connect(ac.Name, ac.Identity, inboxPrefix(ac.Name))
	if err != nil {
		return nil, err
	}
	js, err := n.jetStream(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("mesh: agent %s: %w", ac.Name, err)
	}
	a := &Agent{node: n, cfg: ac, nc: nc, js: js, slots: make(chan struct{}, maxConcurrentRequests)}
	a.card = Card{DID: ac.Identity.DID(), Name: ac.Name, Node: n.cfg.Name, Role: ac.Role, Tools: slices.Clone(ac.Tools), Status: StatusOnline}
	return a, nil
}

// Name is the agent's name.
func (a *Agent) Name() string { return a.cfg.Name }

// DID is the agent's did:key.
func (a *Agent) DID() string { return a.cfg.Identity.DID() }

// Conn is the agent's own NATS connection (its user, its permissions).
func (a *Agent) Conn() *nats.Conn { return a.nc }

func (a *Agent) close() {
	a.mu.Lock()
	sub := a.sub
	a.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	a.nc.Close()
}

// Serve routes the agent's inbox to h. Each verified request is handled in
// its own goroutine (at most 16 at once); refused ones are reported through
// Config.OnReject and answered with a signed error unless they were a
// flood.
func (a *Agent) Serve(h Handler) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sub != nil {
		return fmt.Errorf("mesh: agent %s is already served", a.cfg.Name)
	}
	sub, err := a.nc.Subscribe(InboxSubject(a.cfg.Name), func(m *nats.Msg) { a.serveOne(h, m) })
	if err != nil {
		return fmt.Errorf("mesh: agent %s: subscribing to its inbox: %w", a.cfg.Name, err)
	}
	// More than the default pending bounds: a burst waits rather than being dropped.
	_ = sub.SetPendingLimits(4096, 64<<20)
	a.sub = sub
	return a.nc.Flush()
}

// serveOne runs on the subscription's goroutine: it waits for a slot, so
// a busy agent applies back-pressure instead of spawning without bound.
func (a *Agent) serveOne(h Handler, m *nats.Msg) {
	n := a.node
	env, err := n.verify.open(m.Subject, m.Data, a.DID())
	if err != nil {
		n.rejectErr(err, a.cfg.Name)
		var re *RejectError
		if errors.As(err, &re) && re.Reason != ReasonRate && m.Reply != "" {
			a.replyError(m, env, string(re.Reason), re.Detail)
		}
		return
	}
	select {
	case a.slots <- struct{}{}:
	case <-n.ctx.Done():
		return
	}
	if !n.goSafe(func() {
		defer func() { <-a.slots }()
		ctx, cancel := context.WithDeadline(n.ctx, env.Expires)
		defer cancel()
		payload, err := h.HandleMessage(ctx, env)
		if m.Reply == "" {
			return
		}
		if err != nil {
			code := "error"
			if errors.Is(err, context.DeadlineExceeded) {
				code = "timeout"
			}
			a.replyError(m, env, code, err.Error())
			return
		}
		a.reply(m, env, "depai.reply", payload)
	}) {
		<-a.slots
	}
}

func (a *Agent) reply(m *nats.Msg, req Envelope, schema string, payload json.RawMessage) {
	e := Envelope{Schema: schema, Version: 1, To: req.From, Session: req.Session, Re: req.Nonce, Hops: req.Hops, Payload: payload,
		Expires: time.Now().Add(30 * time.Second)}
	data, err := seal(a.cfg.Identity, a.cfg.Name, &e)
	if err != nil {
		a.node.log.Warn("reply not sent", "agent", a.cfg.Name, "err", err)
		return
	}
	if err := m.Respond(data); err != nil {
		a.node.log.Debug("reply not sent", "agent", a.cfg.Name, "err", err)
	}
}

func (a *Agent) replyError(m *nats.Msg, req Envelope, code, msg string) {
	p, _ := json.Marshal(errorPayload{Code: code, Message: msg})
	a.reply(m, req, schemaError, p)
}

// AskOptions shape a request. Zero fields take defaults.
type AskOptions struct {
	Schema  string // default "depai.ask"
	Session string
	// Hops is the depth of the input that caused this request: the message
	// carries Hops+1, and receivers refuse more than Limits.MaxHops.
	Hops int
	// Timeout applies when ctx has no earlier deadline; default 30 s.
	Timeout time.Duration
}

// Ask sends payload to the agent named to, anywhere in the fleet, and
// returns its signed, verified reply. An error the other agent returned
// is a *RemoteError; a refused reply is a *RejectError (and reported).
func (a *Agent) Ask(ctx context.Context, to string, payload json.RawMessage, o AskOptions) (Envelope, error) {
	n := a.node
	if o.Schema == "" {
		o.Schema = "depai.ask"
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	toDID, err := n.resolve(ctx, to)
	if err != nil {
		return Envelope{}, err
	}
	exp := n.deadline(ctx, o.Timeout)
	req := Envelope{Schema: o.Schema, Version: 1, To: toDID, Session: o.Session, Hops: o.Hops + 1, Payload: payload, Expires: exp}
	data, err := seal(a.cfg.Identity, a.cfg.Name, &req)
	if err != nil {
		return Envelope{}, err
	}
	rctx, cancel := context.WithDeadline(ctx, exp)
	defer cancel()
	m, err := a.nc.RequestWithContext(rctx, InboxSubject(to), data)
	// Interest crosses a leaf link a moment after a subscription (or a
	// reconnect): give it that moment before calling the agent unreachable.
	for wait := 25 * time.Millisecond; errors.Is(err, nats.ErrNoResponders) && wait <= 400*time.Millisecond; wait *= 2 {
		sleepCtx(rctx, wait)
		m, err = a.nc.RequestWithContext(rctx, InboxSubject(to), data)
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Envelope{}, fmt.Errorf("%w: %s is not serving its inbox", ErrUnreachable, to)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return Envelope{}, fmt.Errorf("mesh: ask %s: %w: no reply by %s", to, ErrTimeout, exp.Format(time.RFC3339Nano))
	case err != nil:
		return Envelope{}, fmt.Errorf("mesh: ask %s: %w", to, err)
	}
	rep, err := n.verify.open(m.Subject, m.Data, a.DID())
	if err != nil {
		n.rejectErr(err, a.cfg.Name)
		return Envelope{}, err
	}
	if rep.Re != req.Nonce || rep.From != toDID {
		r := Rejection{Time: time.Now(), Reason: ReasonMisrouted, Subject: m.Subject, Agent: a.cfg.Name, From: rep.From, FromName: rep.FromName, Schema: rep.Schema, Size: len(m.Data),
			Detail: fmt.Sprintf("reply from %s to request %s, want from %s to %s", rep.From, clip(rep.Re), toDID, req.Nonce)}
		n.reject(r)
		return Envelope{}, &RejectError{r}
	}
	if rep.Schema == schemaError {
		var ep errorPayload
		_ = json.Unmarshal(rep.Payload, &ep)
		return rep, &RemoteError{Agent: to, Code: ep.Code, Message: ep.Message}
	}
	return rep, nil
}

// resolve finds the DID of an agent by name: local, then the registry.
func (n *Node) resolve(ctx context.Context, name string) (string, error) {
	if a, ok := n.Agent(name); ok {
		return a.DID(), nil
	}
	if c, ok := n.reg.lookup(ctx, name); ok {
		return c.DID, nil
	}
	return "", fmt.Errorf("%w: %q has no registry card", ErrUnknownPeer, name)
}
