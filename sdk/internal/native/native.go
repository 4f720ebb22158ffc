// Package native serves a plugin's registry as a process plugin: a
// hashicorp/go-plugin gRPC server speaking the wire.Process* protocol. It is
// the native half of sdk.Main; the same registry is exported to WASM by the
// wasip1 half, so one plugin source builds for either transport.
package native

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/depai/depai/internal/deadline"
	"github.com/depai/depai/internal/rawsock"
	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// envelope is room for the JSON envelope around a payload at the limit.
const envelope = 64 << 10

// ErrNotHosted is returned by Serve when the binary was started by hand
// rather than by a depai host.
var ErrNotHosted = errors.New("not started by a depai host")

// Serve serves reg until the host disconnects. Started without the host's
// handshake cookie it serves nothing and returns an error wrapping
// ErrNotHosted that tells a person what to do with the binary.
func Serve(reg *registry.Registry) error {
	if os.Getenv(wire.ProcessCookieKey) != wire.ProcessCookieValue {
		return notHosted(reg)
	}
	srv := &server{reg: reg}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{wire.ProcessPluginSet: &grpcPlugin{srv: srv}},
		// The host enforces the message limit it sets in ProcessStart; the
		// transport itself must not cut below it.
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(math.MaxInt32), grpc.MaxSendMsgSize(math.MaxInt32))...)
		},
		// go-plugin's own chatter would otherwise land in the agent's log at
		// trace level for every plugin.
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
	})
	return nil
}

// Handshake is the go-plugin handshake both sides use. Its protocol version
// is the wire ABI, so go-plugin itself refuses a plugin of another major ABI.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  wire.ABIVersion,
	MagicCookieKey:   wire.ProcessCookieKey,
	MagicCookieValue: wire.ProcessCookieValue,
}

func notHosted(reg *registry.Registry) error {
	m := reg.Manifest()
	self := filepath.Base(os.Args[0])
	return fmt.Errorf("%s is a depai plugin (%q, %d tools, ABI %d), %w.\n"+
		"It runs inside a depai agent: list it under plugins: in the agent config,\n"+
		"or look at it with `depai plugin inspect %s` and `depai plugin test %s`",
		self, m.Name, len(m.Tools), m.ABI, ErrNotHosted, os.Args[0], os.Args[0])
}

type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server
}

func (p *grpcPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	p.srv.broker = b
	s.RegisterService(&serviceDesc, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("native: the plugin side has no client")
}

// server answers the host's calls.
type server struct {
	reg    *registry.Registry
	broker *plugin.GRPCBroker
}

func (s *server) init(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	var st wire.ProcessStart
	if err := json.Unmarshal(in.GetValue(), &st); err != nil {
		return nil, fmt.Errorf("native: init: %w", err)
	}
	// Dial now: the broker forgets an offered connection after 5s, and the
	// first host call may come much later. But do not hold up the answer
	// for it — the connection's address comes over the broker's stream
	// after the host sent Init — host calls wait for it instead.
	host := &hostCaller{max: st.MaxMessageBytes, dialed: make(chan struct{})}
	go func() {
		defer close(host.dialed)
		host.conn, host.dialErr = s.broker.DialWithOptions(st.HostBroker, grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
		if host.dialErr != nil {
			fmt.Fprintf(stderr, "depai plugin %q: connect to the host's broker: %v\n", st.Plugin, host.dialErr)
		}
	}()
	ln, path, err := listenUnix()
	if err != nil {
		return nil, fmt.Errorf("native: call socket: %w", err)
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token) // crypto/rand.Read never fails on Linux
	m := s.reg.Manifest()
	c := &calls{srv: s, st: st, host: host, cancels: map[uint64]context.CancelFunc{},
		act: newActuation(s.reg, m, st.Plugin), token: []byte(hex.EncodeToString(token)), max: st.MaxMessageBytes + envelope}
	if st.MaxMessageBytes <= 0 {
		c.max = math.MaxInt32
	}
	c.act.start()
	go c.accept(ln)
	if m.Run {
		// The run hooks live as long as the process; unloading the plugin
		// ends the process, and them with it.
		go c.runHooks()
	}
	b, err := json.Marshal(wire.ProcessReady{Manifest: m, CallAddr: path, CallToken: string(c.token)})
	if err != nil {
		return nil, fmt.Errorf("native: encode manifest: %w", err)
	}
	return wrapperspb.Bytes(b), nil
}

// listenUnix listens on a fresh socket in go-plugin's socket directory (a
// private temporary directory when the host set one) or the temp dir.
func listenUnix() (net.Listener, string, error) {
	f, err := os.CreateTemp(os.Getenv("PLUGIN_UNIX_SOCKET_DIR"), "depai-calls")
	if err != nil {
		return nil, "", err
	}
	path := f.Name()
	f.Close()
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, "", err
	}
	return ln, path, nil
}

// calls serves the call socket from Init. Each connection carries one call
// at a time (see wire.ProcessReady), run on the goroutine that read it.
type calls struct {
	srv   *server
	st    wire.ProcessStart
	host  *hostCaller
	act   *actuation
	token []byte
	max   int // largest call frame body accepted

	first atomic.Bool // the first connection was accepted
	dl    deadline.Set

	mu      sync.Mutex
	cancels map[uint64]context.CancelFunc
}

// accept serves every connection that opens with the call token. The
// socket stays in go-plugin's private directory (0600) for the life of the
// process, so the host can open a connection per concurrent call.
func (c *calls) accept(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(stderr, "depai plugin %q: call socket: %v\n", c.st.Plugin, err)
			os.Exit(4)
		}
		go c.serve(conn)
	}
}

// serve reads one connection's frames and runs its calls. The first
// connection is the host's own: when it closes, the host is gone.
func (c *calls) serve(nc net.Conn) {
	conn := rawsock.New(nc)
	r := bufio.NewReaderSize(conn, 64<<10)
	kind, _, body, err := wire.ReadFrame(r, len(c.token))
	if err != nil || kind != wire.FrameHello || subtle.ConstantTimeCompare(body, c.token) != 1 {
		conn.Close()
		return
	}
	primary := c.first.CompareAndSwap(false, true)
	cw := &connWriter{conn: conn}
	for {
		kind, id, body, err := wire.ReadFrame(r, c.max)
		switch {
		case errors.Is(err, wire.ErrFrameTooLarge):
			cw.reply(c, id, wire.Result{Error: wire.Errorf(wire.CodeTooLarge, "call envelope: %v", err)})
			continue
		case err != nil && primary:
			// The host closed the socket or died: nothing is left to serve.
			c.act.hostGone("the host closed the call socket")
		case err != nil:
			conn.Close()
			return
		}
		switch kind {
		case wire.FrameCall:
			c.run(cw, id, body)
		case wire.FrameCancel:
			c.mu.Lock()
			cancel := c.cancels[id]
			c.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	}
}

// connWriter writes result frames to one connection.
type connWriter struct {
	conn      net.Conn
	body, buf []byte // the last result's, kept for the next one
}

// runHooks runs the plugin's sdk.Run hooks; an error ends up in the
// agent's log through standard error.
func (c *calls) runHooks() {
	res := c.srv.reg.Dispatch(context.Background(), c.host, wire.Call{Method: wire.MethodRun})
	if res.Error != nil {
		fmt.Fprintf(stderr, "depai plugin %q: run hook ended: %v\n", c.st.Plugin, res.Error)
	}
}

func (c *calls) run(cw *connWriter, id uint64, body []byte) {
	call, err := wire.ParseCallBody(body)
	if err != nil {
		cw.reply(c, id, wire.Result{Error: wire.Errorf(wire.CodeInvalidArgument, "plugin %q: malformed call envelope: %v", c.st.Plugin, err)})
		return
	}
	if res, ok := c.act.intercept(call); ok {
		cw.reply(c, id, res)
		return
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if call.Deadline != 0 {
		ctx, cancel = c.dl.With(context.Background(), time.Unix(0, call.Deadline))
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	c.mu.Lock()
	c.cancels[id] = cancel
	c.mu.Unlock()
	res := c.srv.dispatch(ctx, c.st, c.host, call)
	c.mu.Lock()
	delete(c.cancels, id)
	c.mu.Unlock()
	cancel()
	cw.reply(c, id, res)
}

func (cw *connWriter) reply(c *calls, id uint64, res wire.Result) {
	cw.body = wire.AppendResultBody(cw.body[:0], res)
	cw.buf = wire.AppendFrame(cw.buf[:0], wire.FrameResult, id, cw.body)
	_, err := cw.conn.Write(cw.buf)
	if cap(cw.buf) > 64<<10 {
		cw.body, cw.buf = nil, nil // do not keep a large result's buffers
	}
	if err != nil {
		c.act.hostGone("the call socket broke")
	}
}

// dispatch runs one call and polices what the handler returns, so the host
// gets a typed error instead of an envelope it cannot read.
func (s *server) dispatch(ctx context.Context, st wire.ProcessStart, hc *hostCaller, call wire.Call) wire.Result {
	handled := watchdog(ctx, st, call.Method)
	var host registry.HostCaller
	if hc != nil {
		host = hc
	}
	res := s.reg.Dispatch(ctx, host, call)
	handled()
	switch {
	case res.Error != nil:
	case st.MaxMessageBytes > 0 && len(res.Payload) > st.MaxMessageBytes:
		return wire.Result{Error: wire.Errorf(wire.CodeTooLarge, "%s returned %d bytes; the limit is %d", call.Method, len(res.Payload), st.MaxMessageBytes)}
	case len(res.Payload) > 0 && !json.Valid(res.Payload):
		return wire.Result{Error: wire.Errorf(wire.CodeInternal, "%s returned a payload that is not valid JSON", call.Method)}
	}
	return res
}

// watchdog exits the process when a handler is still running HangGrace
// after its call's context ended. A Go handler spinning in a loop cannot be
// stopped from outside; a clean restart by the host is the only remedy, and
// it is better than a plugin that burns a core until the agent stops.
// Call the returned function when the handler returns; a call that ends in
// time starts no timer.
func watchdog(ctx context.Context, st wire.ProcessStart, method string) (handled func()) {
	if st.HangGraceMillis <= 0 {
		return func() {}
	}
	finished := new(atomic.Bool)
	grace := time.Duration(st.HangGraceMillis) * time.Millisecond
	stop := context.AfterFunc(ctx, func() {
		time.AfterFunc(grace, func() {
			if finished.Load() {
				return
			}
			fmt.Fprintf(stderr, "depai plugin %q: handler %s still running %v after its call ended (%v); exiting so the host restarts a clean process\n",
				st.Plugin, method, grace, context.Cause(ctx))
			os.Exit(3)
		})
	})
	return func() {
		finished.Store(true)
		stop()
	}
}

// stderr is the process's real standard error. go-plugin swaps os.Stderr for
// a pipe it streams to the host, which would be lost with an os.Exit.
var stderr io.Writer = os.NewFile(2, "/dev/stderr")

// hostCaller reaches the host's capabilities through the broker.
type hostCaller struct {
	max int
	// dialed is closed once the broker connection is dialed: conn or
	// dialErr is set.
	dialed  chan struct{}
	conn    *grpc.ClientConn
	dialErr error
}

func (h *hostCaller) HostCall(ctx context.Context, method string, payload []byte) ([]byte, error) {
	if h.max > 0 && len(payload) > h.max {
		return nil, wire.Errorf(wire.CodeTooLarge, "host call %s: payload of %d bytes exceeds the limit of %d", method, len(payload), h.max)
	}
	req, err := json.Marshal(wire.Call{Method: method, Payload: json.RawMessage(payload)})
	if err != nil {
		return nil, wire.Errorf(wire.CodeInvalidArgument, "host call %s: payload is not valid JSON: %v", method, err)
	}
	select {
	case <-h.dialed:
	case <-ctx.Done():
		return nil, wire.Errorf(wire.CodeTimeout, "host call %s: waiting for the host's broker: %v", method, context.Cause(ctx))
	}
	if h.dialErr != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "host call %s: no connection to the host: %v", method, h.dialErr)
	}
	var out wrapperspb.BytesValue
	if err := h.conn.Invoke(ctx, wire.ProcessHost, wrapperspb.Bytes(req), &out); err != nil {
		if ctx.Err() != nil {
			return nil, wire.Errorf(wire.CodeTimeout, "host call %s: %v", method, context.Cause(ctx))
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "host call %s: %v", method, err)
	}
	var res wire.Result
	if err := json.Unmarshal(out.GetValue(), &res); err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "host call %s: malformed reply: %v", method, err)
	}
	if res.Error != nil {
		return nil, res.Error
	}
	return res.Payload, nil
}

// Service is the plugin side of wire.ProcessService.
type service interface {
	init(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: wire.ProcessService,
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Init", Handler: unary(service.init, wire.ProcessInit)},
	},
	Metadata: "depai/sdk/wire/process.go",
}

// unary adapts a method to grpc's handler shape, the job protoc-gen-go-grpc
// would do for us.
func unary(m func(service, context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error), full string) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.BytesValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		if icpt == nil {
			return m(srv.(service), ctx, in)
		}
		return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, func(ctx context.Context, req any) (any, error) {
			return m(srv.(service), ctx, req.(*wrapperspb.BytesValue))
		})
	}
}
