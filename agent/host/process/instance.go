package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/internal/deadline"
	"github.com/depai/depai/sdk/wire"
)

// envelope is room for the JSON envelope around a payload at the gRPC
// message size limit.
const envelope = 64 << 10

// crashSettle is how long a failed call waits to learn whether the process
// died (the broken connection and the process exit race each other).
const crashSettle = 250 * time.Millisecond

// instance is one supervised plugin: at most one live process at a time,
// replaced after a crash.
type instance struct {
	t      *transport
	cfg    Config
	spec   host.LoadSpec
	limits host.Limits
	log    *slog.Logger
	sem    chan struct{} // Limits.Concurrency slots
	output *host.OutputLimiter
	// deadlines ends calls at CallTimeout without a runtime timer per call.
	deadlines deadline.Set

	manifest wire.Manifest

	mu      sync.Mutex
	cur     *proc         // nil while restarting, after giving up, or closed
	ready   chan struct{} // closed when cur is set again or supervision ends
	crashes []time.Time   // within Restart.Window
	failed  error         // set when supervision gave up
	closed  bool
	// confinement is what the launcher enforces on the current process.
	confinement host.Confinement
}

var _ host.Confined = (*instance)(nil)

func newInstance(t *transport, spec host.LoadSpec) *instance {
	l := spec.Limits.OrDefault()
	cfg := t.cfg
	return &instance{
		t:      t,
		cfg:    cfg,
		spec:   spec,
		limits: l,
		log:    cfg.Logger.With("plugin", spec.Name),
		sem:    make(chan struct{}, l.Concurrency),
		output: host.NewOutputLimiter(float64(l.OutputBytes), cfg.Logger.With("plugin", spec.Name)),
		ready:  make(chan struct{}),
	}
}

// proc is one running plugin process.
type proc struct {
	client *plugin.Client
	conn   *grpc.ClientConn // go-plugin's connection: Init
	calls  *callConn        // the call socket
	run    *cmdRunner
	// timeout is the start timeout this process was given.
	timeout time.Duration
	stderr  *lineLogger
	// inflight counts calls running in it; started counts every call, so
	// the idle-CPU watch can tell a window with no call at all.
	inflight, started atomic.Int64
}

func (p *proc) kill() {
	if p.calls != nil {
		p.calls.close()
	}
	p.client.Kill()
}

// exitReason says how the process ended; valid after run.exited is closed.
func (p *proc) exitReason() string {
	if p.run.waitErr == nil {
		return "exited with status 0"
	}
	return p.run.waitErr.Error()
}

// start starts a process, hands it the host broker and reads its manifest.
func (in *instance) start(ctx context.Context) (*proc, wire.Manifest, error) {
	timeout := in.cfg.StartTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	p := &proc{timeout: timeout, stderr: newLineLogger(in.log.With("stream", "stderr"), in.output)}
	p.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  plugin.HandshakeConfig{ProtocolVersion: wire.ABIVersion, MagicCookieKey: wire.ProcessCookieKey, MagicCookieValue: wire.ProcessCookieValue},
		Plugins:          plugin.PluginSet{wire.ProcessPluginSet: &clientPlugin{}},
		RunnerFunc:       in.runnerFunc(func(r *cmdRunner) { p.run = r }),
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     timeout,
		Stderr:           p.stderr,
		SyncStderr:       newLineLogger(in.log.With("stream", "stderr"), in.output),
		SyncStdout:       newLineLogger(in.log.With("stream", "stdout"), in.output),
		Logger:           hclog.NewNullLogger(),
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(
				grpc.MaxCallRecvMsgSize(in.limits.MaxMessageBytes+envelope),
				grpc.MaxCallSendMsgSize(in.limits.MaxMessageBytes+envelope)),
		},
	})
	m, err := in.handshake(ctx, p)
	if err != nil {
		p.kill()
		if last := p.stderr.lastLine(); last != "" {
			err = fmt.Errorf("%w; its last output: %s", err, last)
		}
		return nil, wire.Manifest{}, err
	}
	return p, m, nil
}

func (in *instance) handshake(ctx context.Context, p *proc) (wire.Manifest, error) {
	rpc, err := p.client.Client()
	switch {
	case err == nil:
	case p.run == nil || p.run.pid == 0:
		return wire.Manifest{}, fmt.Errorf("start: %w", err)
	case strings.Contains(err.Error(), "incompatible API version"):
		return wire.Manifest{}, fmt.Errorf("it speaks another plugin ABI than this agent's (ABI %d); rebuild it against this depai: %w", wire.ABIVersion, err)
	case strings.Contains(err.Error(), "timeout while waiting for plugin to start"):
		return wire.Manifest{}, fmt.Errorf("no handshake within %v (is it a depai plugin built with sdk.Main?): %w", p.timeout, err)
	case exitedWithin(p.run.exited, crashSettle) && !p.run.killedByHost():
		return wire.Manifest{}, fmt.Errorf("it ended (%s) before completing the handshake: %w", p.exitReason(), err)
	default:
		return wire.Manifest{}, fmt.Errorf("handshake: %w", err)
	}
	raw, err := rpc.Dispense(wire.ProcessPluginSet)
	if err != nil {
		return wire.Manifest{}, fmt.Errorf("dispense: %w", err)
	}
	c := raw.(*clientConn)
	p.conn = c.conn
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(in.limits.MaxMessageBytes+envelope))...)
		s.RegisterService(&hostServiceDesc, &hostServer{in: in})
		return s
	})
	start, err := json.Marshal(wire.ProcessStart{
		Plugin:          in.spec.Name,
		HostBroker:      id,
		MaxMessageBytes: in.limits.MaxMessageBytes,
		HangGraceMillis: in.cfg.HangGrace.Milliseconds(),
	})
	if err != nil {
		return wire.Manifest{}, err
	}
	ictx, cancel := context.WithTimeout(ctx, in.cfg.StartTimeout)
	defer cancel()
	var out wrapperspb.BytesValue
	if err := p.conn.Invoke(ictx, wire.ProcessInit, wrapperspb.Bytes(start), &out); err != nil {
		return wire.Manifest{}, fmt.Errorf("init: %w", err)
	}
	var ready wire.ProcessReady
	if err := json.Unmarshal(out.GetValue(), &ready); err != nil {
		return wire.Manifest{}, fmt.Errorf("malformed init reply: %w", err)
	}
	if ready.CallToken == "" {
		return wire.Manifest{}, errors.New("it speaks an older call protocol (no call token at Init); rebuild it against this depai")
	}
	if p.calls, err = dialCalls(ready.CallAddr, ready.CallToken, in.limits.MaxMessageBytes+envelope); err != nil {
		return wire.Manifest{}, err
	}
	return ready.Manifest, nil
}

// install makes p the live process and watches it for a crash.
func (in *instance) install(p *proc) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		p.kill()
		return
	}
	in.cur = p
	close(in.ready)
	in.mu.Unlock()
	go in.watch(p)
	go in.watchIdleCPU(p)
}

// watchIdleCPU restarts a process that burns CPU while no call is in flight
// — a goroutine a handler left spinning, say — measured from the kernel's
// accounting (utime+stime in /proc/<pid>/stat) over each IdleWindow.
func (in *instance) watchIdleCPU(p *proc) {
	tick := time.NewTicker(in.cfg.IdleWindow)
	defer tick.Stop()
	last, ok := cpuTime(p.run.pid)
	calls := p.started.Load()
	for ok {
		select {
		case <-p.run.exited:
			return
		case <-tick.C:
		}
		now, ok2 := cpuTime(p.run.pid)
		if !ok2 {
			return
		}
		idle := p.inflight.Load() == 0 && p.started.Load() == calls
		used := (now - last).Seconds() / in.cfg.IdleWindow.Seconds()
		last, calls = now, p.started.Load()
		if idle && used > in.cfg.IdleCPU {
			in.log.Error("plugin burned CPU while idle; restarting it", "cpu", fmt.Sprintf("%.0f%%", used*100),
				"limit", fmt.Sprintf("%.0f%%", in.cfg.IdleCPU*100), "window", in.cfg.IdleWindow, "pid", p.run.pid)
			p.kill()
			return
		}
	}
}

func (in *instance) watch(p *proc) {
	<-p.run.exited
	in.crashed(p, p.exitReason())
}

// crashed records that p died (or failed to restart) and schedules the next
// start, or gives up.
func (in *instance) crashed(p *proc, reason string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || (p != nil && in.cur != p) {
		return
	}
	if in.cur != nil {
		// Reap what go-plugin keeps for the dead process (its socket
		// directory, stream goroutines); Kill returns at once for it.
		go in.cur.kill()
		in.cur = nil
		in.ready = make(chan struct{})
	}
	now := time.Now()
	kept := in.crashes[:0]
	for _, t := range in.crashes {
		if now.Sub(t) < in.cfg.Restart.Window {
			kept = append(kept, t)
		}
	}
	in.crashes = append(kept, now)
	n := len(in.crashes)
	if n >= in.cfg.Restart.MaxCrashes {
		in.failed = fmt.Errorf("plugin %q crashed %d times within %v and will not be restarted until it is reloaded; last: %s",
			in.spec.Name, n, in.cfg.Restart.Window, reason)
		in.log.Error("plugin given up", "crashes", n, "reason", reason)
		close(in.ready)
		if f := in.spec.OnGiveUp; f != nil {
			go f(in.failed) // the host quarantines it, which closes this instance: not under in.mu
		}
		return
	}
	backoff := in.cfg.Restart.MinBackoff << (n - 1)
	if backoff > in.cfg.Restart.MaxBackoff || backoff <= 0 {
		backoff = in.cfg.Restart.MaxBackoff
	}
	in.log.Warn("plugin crashed; restarting", "reason", reason, "crashes", n, "backoff", backoff)
	time.AfterFunc(backoff, in.restart)
}

func (in *instance) restart() {
	p, m, err := in.start(context.Background())
	if err == nil && m.ABI != wire.ABIVersion {
		p.kill()
		err = fmt.Errorf("it now speaks ABI %d", m.ABI)
	}
	if err != nil {
		in.crashed(nil, "restart failed: "+err.Error())
		return
	}
	in.log.Info("plugin restarted", "pid", p.run.pid)
	in.stopRestarted(p, m)
	in.install(p)
	if in.spec.Restarted != nil {
		in.spec.Restarted()
	}
}

// live waits until a process is up, supervision gave up, or ctx ends.
func (in *instance) live(ctx context.Context) (*proc, *wire.Error) {
	for {
		in.mu.Lock()
		p, ready, failed, closed := in.cur, in.ready, in.failed, in.closed
		in.mu.Unlock()
		switch {
		case closed:
			return nil, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("plugin %q is closed", in.spec.Name)}
		case failed != nil:
			return nil, &wire.Error{Code: wire.CodeUnavailable, Message: failed.Error()}
		case p != nil && isDone(p.run.exited):
			// Died since its last call; the watcher may not have seen it yet.
			in.crashed(p, p.exitReason())
			continue
		case p != nil:
			return p, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, &wire.Error{Code: wire.CodeUnavailable, Retryable: true,
				Message: fmt.Sprintf("plugin %q is restarting after a crash and was not back within the call's deadline", in.spec.Name)}
		}
	}
}

func (in *instance) Manifest() wire.Manifest { return in.manifest }

// Confinement is what the launcher enforces on the plugin's process.
func (in *instance) Confinement() host.Confinement {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.confinement
}

// Call runs one method in the plugin; see host.Instance.
func (in *instance) Call(ctx context.Context, call wire.Call) wire.Result {
	ctx, cancel := in.deadlines.With(ctx, time.Now().Add(in.limits.CallTimeout))
	defer cancel()
	if n := len(call.Payload); n > in.limits.MaxMessageBytes {
		return result(wire.CodeTooLarge, false, "%s: payload of %d bytes exceeds plugin %q's limit of %d", call.Method, n, in.spec.Name, in.limits.MaxMessageBytes)
	}
	select {
	case in.sem <- struct{}{}:
		defer func() { <-in.sem }()
	case <-ctx.Done():
		return in.ctxResult(ctx, call, "waiting for one of its %d call slots", in.limits.Concurrency)
	}
	p, werr := in.live(ctx)
	if werr != nil {
		return wire.Result{Error: werr}
	}
	return in.callProc(ctx, p, call)
}

// callProc runs one call in process p; ctx has its deadline.
func (in *instance) callProc(ctx context.Context, p *proc, call wire.Call) wire.Result {
	p.started.Add(1)
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	if d, ok := ctx.Deadline(); ok && call.Deadline == 0 {
		call.Deadline = d.UnixNano()
	}
	if len(call.Payload) > 0 && !json.Valid(call.Payload) {
		return result(wire.CodeInvalidArgument, false, "%s: payload is not valid JSON: %v", call.Method, json.Compact(new(bytes.Buffer), call.Payload))
	}
	rep := p.calls.roundTrip(ctx, call)
	switch {
	case errors.Is(rep.err, errAbandoned):
		return in.ctxResult(ctx, call, "running it")
	case errors.Is(rep.err, wire.ErrFrameTooLarge):
		return result(wire.CodeTooLarge, false, "plugin %q answered %s beyond the %d-byte limit", in.spec.Name, call.Method, in.limits.MaxMessageBytes)
	case rep.err != nil:
		return in.lost(ctx, p, call)
	}
	res, err := wire.ParseResultBody(rep.body)
	switch {
	case err != nil:
		return result(wire.CodeInternal, false, "plugin %q answered %s with a malformed envelope: %v", in.spec.Name, call.Method, err)
	case len(res.Payload) > in.limits.MaxMessageBytes:
		return result(wire.CodeTooLarge, false, "plugin %q answered %s with %d bytes; the limit is %d", in.spec.Name, call.Method, len(res.Payload), in.limits.MaxMessageBytes)
	case len(res.Payload) > 0 && !json.Valid(res.Payload):
		return result(wire.CodeInternal, false, "plugin %q answered %s with a payload that is not valid JSON", in.spec.Name, call.Method)
	}
	return res
}

// lost is the result of a call whose socket broke: crashed when the
// process is found dead, else unavailable.
func (in *instance) lost(ctx context.Context, p *proc, call wire.Call) wire.Result {
	t := time.NewTimer(crashSettle)
	defer t.Stop()
	select {
	case <-p.run.exited:
		in.crashed(p, p.exitReason())
		return result(wire.CodeCrashed, true, "plugin %q died during %s (pid %d %s)", in.spec.Name, call.Method, p.run.pid, p.exitReason())
	case <-t.C:
	case <-ctx.Done():
	}
	return result(wire.CodeUnavailable, true, "plugin %q: %s: the plugin closed its call socket", in.spec.Name, call.Method)
}

func (in *instance) ctxResult(ctx context.Context, call wire.Call, doing string, args ...any) wire.Result {
	what := fmt.Sprintf(doing, args...)
	// internal/deadline ends a call's context with Canceled and the
	// deadline as its cause.
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return result(wire.CodeTimeout, true, "plugin %q: %s: deadline exceeded while %s", in.spec.Name, call.Method, what)
	}
	return result(wire.CodeUnavailable, true, "plugin %q: %s: canceled while %s: %v", in.spec.Name, call.Method, what, context.Cause(ctx))
}

// Close stops the plugin process. In-flight calls fail as unavailable.
func (in *instance) Close(context.Context) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	p := in.cur
	in.cur = nil
	select {
	case <-in.ready:
	default:
		close(in.ready)
	}
	in.mu.Unlock()
	if p != nil {
		p.kill()
	}
	return nil
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// exitedWithin reports whether c is closed within d.
func exitedWithin(c chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c:
		return true
	case <-t.C:
		return false
	}
}
