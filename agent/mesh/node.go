// Package mesh is the fleet on NATS: agents on one machine or many find
// each other, exchange signed messages, delegate tasks and share memory,
// with NATS and JetStream as the engine.
//
// A Node is one process's part of the fleet. It runs an embedded
// nats-server (JetStream on, 127.0.0.1) by default, or a leaf node of a
// hub that keeps working while its link is down, or it joins an external
// NATS cluster. Each local agent connects as its own NATS user,
// authenticated by the Ed25519 key that is also its did:key, with
// permissions that confine it to its own subjects — so one agent cannot
// publish as another — and every message is an Envelope signed by that
// key and verified on receipt. Refused messages are reported through
// Config.OnReject, for the audit log.
//
// On NATS:
//   - depai.agent.NAME.inbox: requests to an agent (Agent.Ask, Agent.Serve)
//   - KV depai_registry: agent cards with a TTL, refreshed by heartbeats
//   - stream DEPAI_TASKS: offer, bid, award, accept, progress, result, failure
//   - stream DEPAI_MEM: records of shared memory namespaces, deduplicated by
//     record ID, applied to each node's store by the node's durable consumer
//
// Lock order (a lock may be taken while holding those before it, never
// the reverse): taskView.mu → registry.mu, and taskView.mu → taskQueue.mu
// (applying a task message checks membership and queues notifications).
// Node.mu, Agent.mu, verifier.mu and replicator.mu are leaf locks: nothing
// else is taken while one is held.
package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/memory"
)

// Mode is how a node reaches the fleet's NATS.
type Mode string

const (
	// ModeEmbedded runs a NATS server with JetStream in this process; it can
	// accept leaf nodes (Config.LeafListen), which makes it a hub.
	ModeEmbedded Mode = "embedded"
	// ModeLeaf runs a NATS server in this process as a leaf node of a hub
	// (Config.Hub). Local agents keep talking while the link is down.
	ModeLeaf Mode = "leaf"
	// ModeExternal connects to an existing NATS cluster with JetStream.
	ModeExternal Mode = "external"
)

// Config configures Start. Node and DataDir (for embedded and leaf) are
// required; the zero value of every other field is a safe default.
type Config struct {
	Mode Mode // default ModeEmbedded

	// Name names this node (a subject token); Node is its key, with which
	// it authenticates its own connection and its leaf link, and signs what
	// it publishes for the node as a whole (replicated memory).
	Name string
	Node *identity.Identity

	// DataDir holds the embedded server's JetStream store (DataDir/nats).
	DataDir string
	// Host and Port of the embedded server's client listener (default
	// 127.0.0.1, a free port).
	Host string
	Port int
	// LeafListen, "host:port", makes an embedded node a hub that accepts
	// the leaf nodes whose node DIDs are in LeafNodes.
	LeafListen string
	LeafNodes  []string
	LeafTLS    *tls.Config

	// Hub is the hub's leaf URLs (nats-leaf://host:port), for ModeLeaf.
	Hub    []string
	HubTLS *tls.Config
	// ReconnectInterval is how often a leaf retries its hub; default 1 s.
	ReconnectInterval time.Duration

	// URLs, Credentials (a .creds file) and TLS are for ModeExternal. Without
	// Credentials each connection authenticates with its own nkey.
	URLs        []string
	Credentials string
	TLS         *tls.Config

	// Agents are the agents this node hosts. Each connects as a NATS user
	// with its own key.
	Agents []AgentConfig
	// Members are DIDs trusted besides the registry's cards (agents and
	// nodes of the fleet that may not have registered yet).
	Members []string

	// Shared lists the memory namespaces (each with everything below it)
	// that replicate through DEPAI_MEM; Store is this node's memory. Both
	// or neither.
	Shared []string
	Store  ReplicaStore

	Limits Limits
	// RegistryTTL is how long a card lives without a heartbeat; default 15 s.
	// Heartbeats come every RegistryTTL/3.
	RegistryTTL time.Duration
	// TaskRetention is how long task messages are kept; default 72 h.
	TaskRetention time.Duration
	// Replicas of the fleet's streams and bucket, for a cluster; default 1.
	Replicas int
	// Domain is the JetStream domain that holds the fleet's streams and
	// bucket: the embedded hub's, which its leaf nodes reach over their link.
	// Default "depai"; in ModeExternal, "" (the cluster's own JetStream).
	Domain string

	// OnReject is called, synchronously and briefly, for every refused
	// message; the core turns it into an audit record.
	OnReject func(Rejection)
	Logger   *slog.Logger
}

// AgentConfig is one local agent.
type AgentConfig struct {
	Name     string
	Identity *identity.Identity
	Role     string
	Tools    []string
}

// ReplicaStore is the memory a node replicates: the badger store
// (*memory.DB) satisfies it. Import keeps a record's ID and skips an ID
// already stored, which is how replicated records keep their identity and
// duplicates are suppressed.
type ReplicaStore interface {
	memory.Store
	memory.Watcher
	Import(ctx context.Context, r io.Reader, opt memory.ImportOptions) (memory.ImportReport, error)
}

// Errors; test them with errors.Is.
var (
	ErrClosed      = errors.New("mesh: node is shut down")
	ErrUnknownPeer = errors.New("mesh: no such agent in the fleet")
	ErrUnreachable = errors.New("mesh: agent unreachable")
	ErrTimeout     = errors.New("mesh: timed out")
)

// Node is one process's part of the fleet.
type Node struct {
	cfg    Config
	log    *slog.Logger
	srv    *Server
	url    string
	nc     *nats.Conn // the node's own connection
	js     jetstream.JetStream
	verify *verifier
	reg    *registry
	tasks  *taskView
	repl   *replicator

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex // guards closing and agents; wg.Add happens under it
	closing  bool
	agents   map[string]*Agent
	wg       sync.WaitGroup
	shutdown sync.Once
}

// Start brings a node up: its server (embedded or leaf), its connections,
// the fleet's streams and bucket (created when missing), registry,
// heartbeats, task view and memory replication. On a leaf whose hub is
// unreachable it returns a working node whose fleet-wide parts retry in
// the background.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeEmbedded
	}
	if cfg.RegistryTTL == 0 {
		cfg.RegistryTTL = 15 * time.Second
	}
	if cfg.TaskRetention == 0 {
		cfg.TaskRetention = 72 * time.Hour
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Domain == "" && cfg.Mode != ModeExternal {
		cfg.Domain = "depai"
	}
	cfg.Limits = cfg.Limits.withDefaults()
	n = &Node{cfg: cfg, log: cfg.Logger, agents: map[string]*Agent{}}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.log = n.log.With("part", "mesh", "node", cfg.Name)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Shutdown()
			n = nil
		}
	}()
	if err := n.startServer(); err != nil {
		return n, err
	}
	if n.nc, err = n.connect(cfg.Name, cfg.Node, ""); err != nil {
		return n, err
	}
	if n.js, err = n.jetStream(n.nc); err != nil {
		return n, fmt.Errorf("mesh: jetstream: %w", err)
	}
	n.verify = newVerifier(cfg.Limits, n.isMember)
	n.reg = newRegistry(n)
	n.tasks = newTaskView(n)
	for _, ac := range cfg.Agents {
		a, err := n.addAgent(ac)
		if err != nil {
			return n, err
		}
		n.agents[ac.Name] = a
	}
	n.reg.start()
	n.tasks.start()
	if cfg.Store != nil {
		if n.repl, err = newReplicator(n); err != nil {
			return n, err
		}
		n.repl.start()
	}
	return n, nil
}

func (c *Config) check() error {
	if err := CheckName(c.Name); err != nil {
		return fmt.Errorf("mesh: Config.Name: %w", err)
	}
	if c.Node == nil {
		return errors.New("mesh: Config.Node (the node's identity) is required")
	}
	switch c.Mode {
	case "", ModeEmbedded:
	case ModeLeaf:
		if len(c.Hub) == 0 {
			return errors.New("mesh: mode leaf needs Config.Hub (the hub's nats-leaf:// URLs)")
		}
	case ModeExternal:
		if len(c.URLs) == 0 {
			return errors.New("mesh: mode external needs Config.URLs")
		}
	default:
		return fmt.Errorf("mesh: Config.Mode %q: want embedded, leaf or external", c.Mode)
	}
	if c.Mode != ModeExternal && c.DataDir == "" {
		return fmt.Errorf("mesh: mode %s needs Config.DataDir for the server's store", c.Mode)
	}
	seen := map[string]bool{c.Name: true}
	for i, a := range c.Agents {
		if err := CheckName(a.Name); err != nil {
			return fmt.Errorf("mesh: Config.Agents[%d]: %w", i, err)
		}
		if seen[a.Name] {
			return fmt.Errorf("mesh: Config.Agents[%d]: name %q is used twice (agents and the node share one name space)", i, a.Name)
		}
		seen[a.Name] = true
		if a.Identity == nil {
			return fmt.Errorf("mesh: Config.Agents[%d] (%s): Identity is required", i, a.Name)
		}
	}
	for i, d := range append(append([]string(nil), c.Members...), c.LeafNodes...) {
		if _, err := identity.ParseDID(d); err != nil {
			return fmt.Errorf("mesh: Config.Members/LeafNodes[%d]: %w", i, err)
		}
	}
	if (c.Store == nil) != (len(c.Shared) == 0) {
		return errors.New("mesh: Config.Shared and Config.Store go together: name the shared namespaces and the store they live in")
	}
	for i, ns := range c.Shared {
		if err := memory.CheckNamespace(ns); err != nil {
			return fmt.Errorf("mesh: Config.Shared[%d]: %w", i, err)
		}
	}
	return nil
}

func (n *Node) startServer() error {
	cfg := n.cfg
	if cfg.Mode == ModeExternal {
		n.url = joinURLs(cfg.URLs)
		return nil
	}
	users := []User{{NKey: cfg.Node.NKey()}}
	for _, a := range cfg.Agents {
		users = append(users, User{NKey: a.Identity.NKey(), Permissions: agentPermissions(a.Name, cfg.Domain)})
	}
	for _, d := range cfg.LeafNodes {
		nk, _ := identity.NKeyFromDID(d) // checked in Config.check
		users = append(users, User{NKey: nk, Leaf: true})
	}
	sc := ServerConfig{
		Name: cfg.Name, Host: cfg.Host, Port: cfg.Port, Users: users,
		MaxPayload: int32(max(cfg.Limits.MaxMessageBytes*2, 1<<20)),
		Logger:     n.log,
	}
	if cfg.Mode == ModeEmbedded {
		sc.JetStream, sc.StoreDir, sc.Domain = true, filepath.Join(cfg.DataDir, "nats"), cfg.Domain
		sc.LeafListen, sc.LeafTLS = cfg.LeafListen, cfg.LeafTLS
	} else {
		sc.Remotes, sc.RemoteTLS, sc.LeafKey, sc.ReconnectInterval = cfg.Hub, cfg.HubTLS, cfg.Node, cfg.ReconnectInterval
	}
	srv, err := StartServer(sc)
	if err != nil {
		return err
	}
	n.srv, n.url = srv, srv.ClientURL()
	return nil
}

// jetStream is the fleet's JetStream as seen through nc.
func (n *Node) jetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	if n.cfg.Domain == "" {
		return jetstream.New(nc)
	}
	return jetstream.NewWithDomain(nc, n.cfg.Domain)
}

// Server is the embedded server, nil in ModeExternal.
func (n *Node) Server() *Server { return n.srv }

// ClientURL is where this node's agents connect.
func (n *Node) ClientURL() string { return n.url }

// connect opens a connection authenticated as id. It keeps reconnecting
// for as long as the node lives.
func (n *Node) connect(name string, id *identity.Identity, inbox string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			n.log.Warn("nats", "conn", name, "subject", subj, "err", err)
		}),
	}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(inbox))
	}
	if n.cfg.Mode == ModeExternal && n.cfg.Credentials != "" {
		opts = append(opts, nats.UserCredentials(n.cfg.Credentials))
	} else {
		opts = append(opts, nats.Nkey(id.NKey(), func(nonce []byte) ([]byte, error) { return id.Sign(nonce), nil }))
	}
	if n.cfg.Mode == ModeExternal && n.cfg.TLS != nil {
		opts = append(opts, nats.Secure(n.cfg.TLS))
	}
	nc, err := nats.Connect(n.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("mesh: connecting %s to %s: %w", name, n.url, err)
	}
	return nc, nil
}

func joinURLs(us []string) string {
	s := ""
	for i, u := range us {
		if i > 0 {
			s += ","
		}
		s += u
	}
	return s
}

// goSafe runs f in a goroutine unless shutdown has begun; it reports
// whether it did. Every goroutine of the node starts here.
func (n *Node) goSafe(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// Shutdown stops the node: heartbeats end (each card is marked offline),
// connections drain, the server stops. No goroutine starts once it began.
// It is idempotent and safe for concurrent use.
func (n *Node) Shutdown() {
	n.shutdown.Do(func() {
		n.mu.Lock()
		n.closing = true
		agents := make([]*Agent, 0, len(n.agents))
		for _, a := range n.agents {
			agents = append(agents, a)
		}
		n.mu.Unlock()
		if n.reg != nil {
			n.reg.offline(agents)
		}
		n.cancel()
		for _, a := range agents {
			a.close()
		}
		if n.nc != nil {
			n.nc.Close()
		}
		n.wg.Wait()
		if n.srv != nil {
			n.srv.Shutdown()
		}
	})
}

// Agent returns the local agent of that name.
func (n *Node) Agent(name string) (*Agent, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, ok := n.agents[name]
	return a, ok
}

// reject reports a refused message.
func (n *Node) reject(r Rejection) {
	n.log.Warn("message refused", "reason", r.Reason, "detail", r.Detail, "subject", r.Subject, "from", r.From, "agent", r.Agent)
	if n.cfg.OnReject != nil {
		n.cfg.OnReject(r)
	}
}

// rejectErr reports err if it is a refusal, and says whether it was.
func (n *Node) rejectErr(err error, agent string) bool {
	var re *RejectError
	if errors.As(err, &re) {
		r := re.Rejection
		r.Agent = agent
		n.reject(r)
		return true
	}
	return false
}

// isMember reports whether did, calling itself name, belongs to the fleet:
// this node, a local agent, a configured member, or the holder of a valid
// registry card.
func (n *Node) isMember(did, name string) bool {
	if did == n.cfg.Node.DID() {
		return true
	}
	for _, a := range n.cfg.Agents {
		if a.Identity.DID() == did {
			return a.Name == name
		}
	}
	for _, m := range n.cfg.Members {
		if m == did {
			return true
		}
	}
	return n.reg.has(did, name)
}

// deadline is when a message sent now under ctx expires: ctx's deadline,
// else def, never beyond the limit receivers accept.
func (n *Node) deadline(ctx context.Context, def time.Duration) time.Time {
	now := time.Now()
	exp := now.Add(def)
	if d, ok := ctx.Deadline(); ok && d.Before(exp) {
		exp = d
	}
	if limit := now.Add(n.cfg.Limits.MaxTTL - time.Second); exp.After(limit) {
		exp = limit
	}
	return exp
}

// errorPayload is the payload of a "depai.error" reply.
type errorPayload struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

const schemaError = "depai.error"

// RemoteError is an error the other agent returned.
type RemoteError struct {
	Agent   string
	Code    string
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("mesh: agent %s: %s: %s", e.Agent, e.Code, e.Message)
}
