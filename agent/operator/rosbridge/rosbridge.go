// Package rosbridge serves the rosbridge v2 protocol (JSON over WebSocket)
// on the operator API, so that ROS tools — roslibjs in a browser, rosbridge
// clients of ROS 2 robots — read the fleet's robots and command them
// through the same tools, policy and audit log as every other caller.
//
// What a client sees, for each agent ROBOT:
//
//	subscribe     /ROBOT/pose     depai_msgs/RobotState   the robot's latest pose, sampled
//	subscribe     /ROBOT/fix      sensor_msgs/NavSatFix   the same pose as a ROS fix
//	subscribe     /ROBOT/readings depai_msgs/Reading      each sensor reading as it is stored
//	publish       /ROBOT/cmd_vel  geometry_msgs/Twist     drive: the robot's velocity tool for Config.Hold
//	call_service  /ROBOT/TOOL     (the tool's arguments)   any of the robot's tools, by name
//	call_service  /depai/estop    std_srvs/Trigger        the emergency stop, fleet-wide
//	call_service  /rosapi/topics, /rosapi/services        what this bridge serves
//
// Every publish and service call is an operator command of the connection's
// operator (the token or console session that opened it): a tool call is
// `/call TOOL {args}` on the named robot, so the policy engine decides it as
// that operator's actuator call — refused under the emergency stop, under
// someone else's teleop, past the motion rules, or for a viewer — and the
// audit log has it. A refusal comes back as a status message (publish) or a
// failed service response (call_service), never a move.
//
// Bounds: one frame is at most Config.MaxFrameBytes (a larger one closes the
// connection with 1009, message too big); at most MaxSubscriptions
// subscriptions and MaxCalls service calls in flight per connection; a
// cmd_vel that arrives while the previous one is still deciding replaces
// any waiting one (the newest command wins, so a stop is never queued
// behind a stale drive). Fragments, compression other than none, and
// client-side services and advertisements of topics this bridge does not
// serve are refused with a status message naming what is supported.
package rosbridge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/policy"
)

// Defaults of a Config.
const (
	DefaultMaxFrameBytes  = 64 << 10
	DefaultSampleInterval = 100 * time.Millisecond
	DefaultHold           = 500 * time.Millisecond
	MaxSubscriptions      = 64
	MaxCalls              = 8
	writeTimeout          = 5 * time.Second
	closeGrace            = 250 * time.Millisecond // for the client's answer to a close
)

// Agent is what the bridge needs of one agent; *agent.Agent satisfies it.
type Agent interface {
	Name() string
	Status() agent.Status
	Handle(ctx context.Context, in agent.Input) iter.Seq2[agent.Event, error]
}

// Operator is who a connection acts for.
type Operator struct {
	Name string
	Role policy.Role
}

// Config configures one connection's bridge.
type Config struct {
	Agents   []Agent  // required: the fleet's agents
	Operator Operator // required: the authenticated operator
	Logger   *slog.Logger
	// MaxFrameBytes bounds one incoming frame; 0: DefaultMaxFrameBytes.
	MaxFrameBytes int64
	// SampleInterval is how often a pose topic is sampled when the
	// subscription's throttle_rate asks for nothing slower; 0:
	// DefaultSampleInterval.
	SampleInterval time.Duration
	// Hold is how long one cmd_vel drives: a Twist has no duration, and a
	// robot must not drive on when its commands stop coming (ROS drivers
	// stop after a similar timeout). A client sends cmd_vel faster than
	// this to keep moving. 0: DefaultHold.
	Hold time.Duration
}

// Serve upgrades the request to a WebSocket and speaks rosbridge v2 on it
// until the client goes, ctx ends or the connection fails. Authentication is
// the caller's (it happened before the upgrade); the browser's same-origin
// rule is kept, so a page of another site cannot open a bridge with an
// operator's console cookie.
func Serve(ctx context.Context, w http.ResponseWriter, r *http.Request, cfg Config) error {
	if len(cfg.Agents) == 0 || cfg.Operator.Name == "" || !cfg.Operator.Role.Valid() {
		http.Error(w, "rosbridge: no agents or no operator", http.StatusInternalServerError)
		return errors.New("rosbridge: Config.Agents and Config.Operator are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.MaxFrameBytes = cmp.Or(cfg.MaxFrameBytes, DefaultMaxFrameBytes)
	cfg.SampleInterval = cmp.Or(cfg.SampleInterval, DefaultSampleInterval)
	cfg.Hold = cmp.Or(cfg.Hold, DefaultHold)
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return fmt.Errorf("rosbridge: %w", err)
	}
	ws.SetReadLimit(cfg.MaxFrameBytes)
	ctx, cancel := context.WithCancel(ctx)
	c := &conn{cfg: cfg, ws: ws, ctx: ctx, cancel: cancel, level: levelError,
		subs: map[string]context.CancelFunc{}, drives: map[string]*drive{}, calls: make(chan struct{}, MaxCalls)}
	err = c.run()
	cancel()
	c.wg.Wait()
	_ = ws.CloseNow()
	return err
}

// conn is one client. Lock order: mu only; it is never held while a
// message is written or an agent is called.
type conn struct {
	cfg    Config
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // subscriptions, drives and calls in flight
	calls  chan struct{}  // MaxCalls slots

	mu     sync.Mutex
	level  level
	subs   map[string]context.CancelFunc // by topic
	drives map[string]*drive             // by cmd_vel topic
}

// run reads frames until the connection ends. A bad frame is answered with
// a status message and the connection goes on; only transport failures
// (including an oversize frame) end it.
func (c *conn) run() error {
	// Reads do not take c.ctx: the library closes the connection at once
	// when a read's context ends, and a client told the server is going
	// should hear so. This goroutine says it, which ends the read.
	c.goWork(func() {
		<-c.ctx.Done()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_ = c.ws.Close(websocket.StatusGoingAway, "the server is shutting down or the connection failed")
		}()
		select {
		case <-closed:
		case <-time.After(closeGrace): // a client that does not answer the close holds nothing
			_ = c.ws.CloseNow()
			<-closed
		}
	})
	for {
		typ, data, err := c.ws.Read(context.WithoutCancel(c.ctx))
		if err != nil {
			switch {
			case c.ctx.Err() != nil:
				return nil
			case websocket.CloseStatus(err) != -1:
				return nil // the client closed
			}
			return fmt.Errorf("rosbridge: read: %w", err)
		}
		if typ != websocket.MessageText {
			c.status(levelError, "", "binary frames (cbor, bson) are not supported; send JSON text")
			continue
		}
		m, err := parse(data)
		if err != nil {
			c.status(levelError, m.ID, err.Error())
			continue
		}
		c.handle(m)
	}
}

func (c *conn) handle(m message) {
	switch m.Op {
	case opSubscribe:
		c.subscribe(m)
	case opUnsubscribe:
		c.unsubscribe(m)
	case opAdvertise:
		if _, _, err := c.commandTopic(m.Topic, m.Type); err != nil {
			c.status(levelError, m.ID, "advertise: "+err.Error())
		}
	case opUnadvertise:
	case opPublish:
		c.publish(m)
	case opCallService:
		c.callService(m)
	case opSetLevel:
		l, ok := parseLevel(m.Level)
		if !ok {
			c.status(levelError, m.ID, fmt.Sprintf("set_level: level %q is not none, error, warning or info", m.Level))
			return
		}
		c.mu.Lock()
		c.level = l
		c.mu.Unlock()
	case opAuth:
		// The upgrade was authenticated (bearer token or console session);
		// rosauth's MAC scheme adds nothing to that.
		c.status(levelInfo, m.ID, "auth: this bridge authenticates the connection itself (operator token or console session); the auth message is ignored")
	default:
		c.status(levelError, m.ID, fmt.Sprintf("op %q is not supported (supported: subscribe, unsubscribe, advertise, unadvertise, publish, call_service, set_level)", m.Op))
	}
}

// send writes one message; a write that fails ends the connection. Once
// the connection is ending nothing more is sent, and a write does not take
// c.ctx: the library closes the connection at once when a write's context
// ends (or has ended), before run's close frame tells the client why.
func (c *conn) send(v any) {
	if c.ctx.Err() != nil {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		c.cfg.Logger.Error("rosbridge: encode", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), writeTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		c.cancel()
	}
}

// status sends a status message, when the client's level asks for it.
func (c *conn) status(l level, id, msg string) {
	c.mu.Lock()
	want := c.level
	c.mu.Unlock()
	if l > want {
		return
	}
	c.send(statusMsg{Op: "status", Level: l.String(), Msg: msg, ID: id})
}

// goWork runs fn as the connection's work, which Serve waits for.
func (c *conn) goWork(fn func()) { c.wg.Go(fn) }

// agent finds the named agent.
func (c *conn) agent(name string) (Agent, bool) {
	for _, a := range c.cfg.Agents {
		if a.Name() == name {
			return a, true
		}
	}
	return nil, false
}

// command runs an operator command on a as the connection's operator and
// returns its reply's data, or its error.
func (c *conn) command(ctx context.Context, a Agent, text string) (json.RawMessage, string, error) {
	in := agent.Input{Source: agent.SourceOperator, From: c.cfg.Operator.Name, Role: c.cfg.Operator.Role, Text: text}
	for ev, err := range a.Handle(ctx, in) {
		if err != nil {
			return nil, "", err
		}
		switch ev.Type {
		case agent.EventReply:
			return ev.Data, ev.Text, nil
		case agent.EventError:
			return nil, "", &agent.TurnError{Code: ev.Code, Message: ev.Error}
		}
	}
	return nil, "", errors.New("the command ended without a reply")
}
