package operator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/operator/console"
	"github.com/depai/depai/agent/operator/internal/sse"
	"github.com/depai/depai/agent/policy"
)

// DefaultAddr is where the API listens when Config.Addr is empty: the
// config file's default operator.addr.
const DefaultAddr = config.DefaultOperatorAddr

// Defaults of a Config.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultBodyTimeout  = 10 * time.Second
	DefaultKeepAlive    = 10 * time.Second
)

// authLogWindow is how often at most a failed authentication is logged;
// the others in a window are counted into one line.
const authLogWindow = 10 * time.Second

// Config configures a Server.
type Config struct {
	// Addr is host:port on loopback: "127.0.0.1:7700", "[::1]:7700",
	// "localhost:7700", or ":7700" (which means 127.0.0.1). Port 0 picks a
	// free port; Server.Addr reports it. Empty: DefaultAddr.
	Addr   string
	Agents []Agent // required: the fleet's agents, in config order
	// Operators are the token holders (at least one): names unique, roles
	// valid, tokens not empty and not shared.
	Operators []Operator
	Logger    *slog.Logger
	// MaxBodyBytes bounds a request body; a larger one gets 413. 0:
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// BodyTimeout bounds reading a request body, so that a client
	// trickling it cannot hold a handler; 0: DefaultBodyTimeout.
	BodyTimeout time.Duration
	// KeepAlive is the interval of the comment lines a streamed turn
	// sends while it runs; 0: DefaultKeepAlive.
	KeepAlive time.Duration
	// Events is the fleet-wide event stream served on GET /v1/events (and
	// what the console follows). Nil: no such route.
	Events *console.Hub
	// Console serves the web console on / with its session logins, which
	// then also authenticate the API.
	Console bool
	// Metrics is served on GET /metrics (behind the same authentication:
	// give a scraper a viewer's token). Nil: no such route.
	Metrics http.Handler
	// Memory serves POST /v1/memory/{namespace}: an operator's put, decided
	// by the policy engine and committed with its audit record, with
	// Idempotency-Key. Nil: no such route.
	Memory MemoryWriter
	// MCP serves the fleet's tools to MCP clients over Streamable HTTP on
	// /mcp, with the calling operator's role.
	MCP bool
	// Remote lists the agents of the fleet's other nodes (the mesh), which
	// the API then lists after Agents and passes messages to. Nil: none.
	Remote func() []Agent
	// Sell serves /x402/ without an operator token: an agent's resources
	// for sale, which buyers pay for with x402 instead of authenticating
	// (agent.Fleet.SellHandler). Nil: no such route.
	Sell http.Handler
}

// Server serves the operator API. Create it with NewServer, run it with
// Serve, stop it with Shutdown.
type Server struct {
	cfg         Config
	console     *console.Console // nil without Config.Console
	agents      []Agent
	ops         []credential
	log         *slog.Logger
	maxBody     int64
	bodyTimeout time.Duration
	keepAlive   time.Duration
	authLog     authLog

	ln   net.Listener
	http *http.Server

	// base is the parent of every request's context; Shutdown cancels it
	// when the grace period ends, which ends the turns still streaming.
	base   context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closing bool           // set by Shutdown: no new turns
	turns   sync.WaitGroup // turns being answered
}

// NewServer checks cfg and binds the listening socket, so that a bad address
// or a port in use is reported here rather than by Serve.
func NewServer(cfg Config) (*Server, error) {
	if len(cfg.Agents) == 0 {
		return nil, errors.New("operator: Config.Agents is required")
	}
	ops, err := credentials(cfg.Operators)
	if err != nil {
		return nil, err
	}
	addr, err := loopbackAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxBody := cfg.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("operator: listen on %s: %w", addr, err)
	}
	s := &Server{
		cfg:         cfg,
		agents:      slices.Clone(cfg.Agents),
		ops:         ops,
		log:         log,
		maxBody:     maxBody,
		bodyTimeout: cmp.Or(cfg.BodyTimeout, DefaultBodyTimeout),
		keepAlive:   cmp.Or(cfg.KeepAlive, DefaultKeepAlive),
		authLog:     authLog{log: log, window: authLogWindow},
		ln:          ln,
	}
	if cfg.Console {
		c, err := console.New(console.Config{Authenticate: s.check})
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		s.console = c
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.http = &http.Server{
		Handler: s.routes(),
		// No ReadTimeout or WriteTimeout: a turn streams for as long as its
		// own bounds allow, and a connection-wide read deadline would cancel
		// it. Bodies are bounded by MaxBodyBytes, and their reading by a
		// per-request deadline (BodyTimeout).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// loopbackAddr checks that addr is a loopback host:port and fills in
// defaults.
func loopbackAddr(addr string) (string, error) {
	if addr == "" {
		return DefaultAddr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("operator: address %q: %w (expected host:port, such as %q)", addr, err, DefaultAddr)
	}
	switch host {
	case "":
		host = "127.0.0.1"
	case "localhost":
	default:
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("operator: address %q: host %q is not a loopback address (expected 127.0.0.1, ::1 or localhost; the API carries its token in clear HTTP)", addr, host)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// Addr is the address the server listens on, such as "127.0.0.1:7700".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers requests until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("operator: serve: %w", err)
}

// lastReplyGrace is how long Shutdown lets cancelled turns send their last
// reply before it closes their connections.
const lastReplyGrace = 100 * time.Millisecond

// Shutdown stops accepting requests and waits for those in flight until ctx
// ends; then it cancels the turns still streaming and waits for them to
// return. Turns cancelled this way end as the agent ends any cancelled turn
// (stored, with a reply saying so).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	err := s.http.Shutdown(ctx)
	s.authLog.stop()
	// Serve closes the listener, but Serve may never have run.
	_ = s.ln.Close()
	s.cancel()
	if err != nil {
		// Give the cancelled turns a moment to send their last reply (it
		// says the turn was cut short) before the connections close.
		done := make(chan struct{})
		go func() { s.turns.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(lastReplyGrace):
		}
		_ = s.http.Close()
	}
	s.turns.Wait()
	if err != nil {
		return fmt.Errorf("operator: shutdown: %w", err)
	}
	return nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	if s.cfg.Events != nil {
		mux.HandleFunc("GET /v1/events", console.ServeEvents(s.cfg.Events))
	}
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.cfg.Metrics)
	}
	if s.cfg.MCP {
		mux.Handle("/mcp", s.mcpHandler())
	}
	mux.HandleFunc("GET /v1/rosbridge", s.serveROSBridge)
	if s.cfg.Memory != nil {
		mux.HandleFunc("POST /v1/memory/{namespace...}", s.putMemory)
		mux.HandleFunc("/v1/memory/{namespace...}", methodNotAllowed("POST"))
	}
	mux.HandleFunc("GET /v1/agents", s.listAgents)
	mux.HandleFunc("GET /v1/agents/{name}", s.getAgent)
	mux.HandleFunc("POST /v1/agents/{name}/messages", s.postMessage)
	// Patterns without a method catch the other methods, so that a wrong
	// method gets a JSON 405 rather than the mux's plain-text one.
	mux.HandleFunc("/v1/agents", methodNotAllowed("GET"))
	mux.HandleFunc("/v1/agents/{name}", methodNotAllowed("GET"))
	mux.HandleFunc("/v1/agents/{name}/messages", methodNotAllowed("POST"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no route %s %s (routes: GET /v1/agents, GET /v1/agents/{name}, POST /v1/agents/{name}/messages, POST /v1/memory/{namespace}, GET /v1/events, GET /v1/rosbridge, GET /metrics, /mcp)", r.Method, r.URL.Path))
	})
	api := s.authenticate(mux)
	if s.cfg.Sell != nil {
		api = sellFirst(s.cfg.Sell, api)
	}
	if s.console == nil {
		return api
	}
	// The console's page, assets and login are public; everything else is
	// the API, which a console session also authenticates.
	public := http.NewServeMux()
	s.console.Routes(public)
	public.Handle("/", api)
	return public
}

// credential is an Operator with its token hashed.
type credential struct {
	name string
	role policy.Role
	sum  [sha256.Size]byte
}

// credentials checks the operators and hashes their tokens.
func credentials(ops []Operator) ([]credential, error) {
	if len(ops) == 0 {
		return nil, errors.New("operator: Config.Operators is required (the API never runs without authentication)")
	}
	out := make([]credential, len(ops))
	names := map[string]bool{}
	sums := map[[sha256.Size]byte]string{}
	for i, op := range ops {
		switch {
		case op.Name == "":
			return nil, fmt.Errorf("operator: Config.Operators[%d]: empty name", i)
		case names[op.Name]:
			return nil, fmt.Errorf("operator: Config.Operators[%d]: duplicate name %q", i, op.Name)
		case !op.Role.Valid():
			return nil, fmt.Errorf("operator: operator %q: invalid role %q (expected %s, %s or %s)", op.Name, op.Role, policy.RoleViewer, policy.RoleOperator, policy.RoleAdmin)
		case strings.TrimSpace(op.Token) == "":
			return nil, fmt.Errorf("operator: operator %q: empty token", op.Name)
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(op.Token)))
		if other, dup := sums[sum]; dup {
			return nil, fmt.Errorf("operator: operators %q and %q have the same token (each needs its own)", other, op.Name)
		}
		names[op.Name], sums[sum] = true, op.Name
		out[i] = credential{name: op.Name, role: op.Role, sum: sum}
	}
	return out, nil
}

// opKey is the request context key of the authenticated *credential.
type opKey struct{}

// authenticate rejects any request without a known bearer token before
// routing, so that an unauthenticated client learns nothing, not even which
// routes exist.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.console != nil && r.Header.Get("Authorization") == "" {
			if so, ok := s.console.Session(r); ok {
				op := &credential{name: so.Name, role: so.Role}
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), opKey{}, op)))
				return
			}
		}
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		ok := strings.EqualFold(scheme, "Bearer") && got != ""
		op := s.operatorOf(got)
		if !ok || op == nil {
			s.authLog.failed(r)
			w.Header().Set("WWW-Authenticate", `Bearer realm="depai"`)
			msg := "missing bearer token (send Authorization: Bearer <token>; depai run prints where the token file is)"
			if ok {
				msg = "wrong bearer token"
			}
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, msg)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), opKey{}, op)))
	})
}

// operatorOf finds the operator whose token this is. It compares hashes, with
// every operator's: equal lengths and the same work whichever matches, so
// the time says nothing about the tokens, not even their lengths.
func (s *Server) operatorOf(token string) *credential {
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	var op *credential
	for i := range s.ops {
		if subtle.ConstantTimeCompare(sum[:], s.ops[i].sum[:]) == 1 {
			op = &s.ops[i]
		}
	}
	return op
}

// check is the console's login: a token's operator.
func (s *Server) check(token string) (console.Operator, bool) {
	if token == "" {
		return console.Operator{}, false
	}
	op := s.operatorOf(token)
	if op == nil {
		return console.Operator{}, false
	}
	return console.Operator{Name: op.name, Role: op.role}, true
}

// authLog logs failed authentications at most once a window: the first of
// a window at once, the rest as one count when the window ends. A flood of
// unauthenticated requests costs a line per window, not one each.
type authLog struct {
	log    *slog.Logger
	window time.Duration

	mu      sync.Mutex
	timer   *time.Timer // running while a window is open
	count   int         // failures in the open window after its first
	stopped bool
}

func (l *authLog) failed(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil || l.stopped {
		l.count++
		return
	}
	l.log.Warn("operator: unauthorized request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	l.timer = time.AfterFunc(l.window, l.flush)
}

// flush ends a window, logging what it counted.
func (l *authLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	if l.count > 0 {
		l.log.Warn("operator: more unauthorized requests", "count", l.count, "within", l.window)
		l.count = 0
	}
}

// stop ends the open window now, so that no timer outlives the server.
func (l *authLog) stop() {
	l.mu.Lock()
	l.stopped = true
	t := l.timer
	l.mu.Unlock()
	if t != nil && t.Stop() {
		l.flush()
	}
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (use %s)", r.Method, r.URL.Path, allow))
	}
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	out := make([]agent.Status, len(s.agents))
	for i, a := range s.agents {
		out[i] = a.Status()
	}
	if s.cfg.Remote != nil {
		for _, a := range s.cfg.Remote() {
			out = append(out, a.Status())
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) {
	a, ok := s.lookup(w, r.PathValue("name"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, a.Status())
}

// lookup finds the named agent or answers 404 listing the agents there are.
func (s *Server) lookup(w http.ResponseWriter, name string) (Agent, bool) {
	names := make([]string, len(s.agents))
	for i, a := range s.agents {
		if a.Name() == name {
			return a, true
		}
		names[i] = a.Name()
	}
	if s.cfg.Remote != nil {
		for _, a := range s.cfg.Remote() {
			if a.Name() == name {
				return a, true
			}
			names = append(names, a.Name())
		}
	}
	writeError(w, http.StatusNotFound, CodeUnknownAgent, fmt.Sprintf("no agent %q; agents: %s", name, strings.Join(names, ", ")))
	return nil, false
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	a, ok := s.lookup(w, r.PathValue("name"))
	if !ok {
		return
	}
	msg, ok := s.decodeMessage(w, r)
	if !ok {
		return
	}
	op := r.Context().Value(opKey{}).(*credential)
	if !s.beginTurn() {
		writeError(w, http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down")
		return
	}
	defer s.turns.Done()
	// The request's context ends when the client goes away or Shutdown
	// gives up waiting; either way the turn is cancelled.
	in := agent.Input{Source: agent.SourceOperator, From: op.name, Role: op.role, Text: msg.Text}
	s.log.Debug("operator: message", "agent", a.Name(), "from", in.From, "text", abbreviate(in.Text, 80))
	turn := a.Handle(r.Context(), in)
	if wantsJSON(r.Header.Get("Accept")) {
		s.answerJSON(w, r, turn)
		return
	}
	s.stream(w, turn)
}

// beginTurn registers a turn unless Shutdown has begun, so that Shutdown's
// wait covers every turn that started.
func (s *Server) beginTurn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.turns.Add(1)
	return true
}

func (s *Server) decodeMessage(w http.ResponseWriter, r *http.Request) (Message, bool) {
	var msg Message
	body, ok := s.readBody(w, r)
	if !ok {
		return msg, false
	}
	if err := decodeStrict(body, &msg); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadJSON, fmt.Sprintf("request body: %v (expected {\"text\": \"...\"})", err))
		return msg, false
	}
	if strings.TrimSpace(msg.Text) == "" {
		writeError(w, http.StatusBadRequest, CodeMissingText, `request body: "text" is missing or empty (expected {"text": "..."}, such as {"text": "/status"})`)
		return msg, false
	}
	return msg, true
}

// readBody reads a request body within MaxBodyBytes and BodyTimeout, or
// answers the failure.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	// A deadline for the body alone: cleared once it is read, so that the
	// connection's background read (which notices a client going away
	// mid-turn) is not cut by it.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.bodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		var tooLarge *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
			return nil, false
		case errors.As(err, &netErr) && netErr.Timeout():
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, CodeBodyTimeout, fmt.Sprintf("the request body did not arrive within %v", s.bodyTimeout))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, CodeBadJSON, fmt.Sprintf("reading request body: %v", err))
		return nil, false
	}
	return body, true
}

// decodeStrict decodes exactly one JSON object with no unknown fields.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// wantsJSON reports whether the client asked for one JSON answer rather than
// a stream.
func wantsJSON(accept string) bool {
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/event-stream")
}

// stream sends the turn as server-sent events. Headers go out at once, so
// the client knows the turn started; a failure after that is an error
// event. While the turn runs, a keep-alive comment goes out every
// s.keepAlive, from a second goroutine: writes to w are serialised by mu.
func (s *Server) stream(w http.ResponseWriter, turn iter.Seq2[agent.Event, error]) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()

	var mu sync.Mutex
	stop := make(chan struct{})
	var keepAlive sync.WaitGroup
	keepAlive.Go(func() {
		t := time.NewTicker(s.keepAlive)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				if sse.Comment(w, "keep-alive") == nil {
					_ = rc.Flush()
				}
				mu.Unlock()
			}
		}
	})
	defer func() {
		close(stop)
		keepAlive.Wait()
	}()

	for ev, err := range turn {
		if err != nil {
			ev = agent.Event{Type: agent.EventError, Code: CodeTurnFailed, Error: err.Error()}
		}
		data, err := json.Marshal(ev)
		if err != nil {
			ev = agent.Event{Type: agent.EventError, TurnID: ev.TurnID, Code: CodeTurnFailed, Error: fmt.Sprintf("encoding %s event: %v", ev.Type, err)}
			data, _ = json.Marshal(ev)
		}
		mu.Lock()
		werr := sse.Write(w, string(ev.Type), data)
		if werr == nil {
			_ = rc.Flush()
		}
		mu.Unlock()
		if werr != nil {
			// The client is gone; its request context is cancelled, which
			// ends the turn. Stop consuming it.
			s.log.Debug("operator: stream write failed", "error", werr)
			return
		}
		if ev.Type == agent.EventError {
			return
		}
	}
}

func (s *Server) answerJSON(w http.ResponseWriter, r *http.Request, turn iter.Seq2[agent.Event, error]) {
	res := TurnResult{Events: []agent.Event{}}
	for ev, err := range turn {
		if err != nil {
			writeError(w, http.StatusInternalServerError, CodeTurnFailed, err.Error())
			return
		}
		switch ev.Type {
		case agent.EventDelta:
			continue
		case agent.EventStored:
			// The JSON answer is given once the turn is durable; the
			// event itself says nothing the answer does not.
			continue
		case agent.EventError:
			code := cmp.Or(ev.Code, CodeTurnFailed)
			writeError(w, StatusOf(code), code, ev.Error)
			return
		}
		res.Events = append(res.Events, ev)
		if ev.Type == agent.EventReply {
			res.Reply = ev
		}
	}
	if res.Reply.Type != agent.EventReply {
		msg := "the turn ended without a reply"
		if err := r.Context().Err(); err != nil {
			msg += ": " + err.Error()
		}
		writeError(w, http.StatusInternalServerError, CodeTurnFailed, msg)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", fmt.Sprintf("encoding response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	data, _ := json.Marshal(errorBody{&Error{Code: code, Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// abbreviate shortens s to at most n runes for a log line.
func abbreviate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i] + "…"
		}
		n--
	}
	return s
}
