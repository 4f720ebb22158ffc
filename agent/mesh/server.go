package mesh

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/depai/depai/agent/identity"
)

// ServerConfig configures an embedded NATS server. It creates nothing until
// StartServer.
type ServerConfig struct {
	// Name is the server's name in logs and cluster views.
	Name string
	// StoreDir holds JetStream's files. Required when JetStream is on.
	StoreDir string
	// Host and Port of the client listener. Host defaults to 127.0.0.1; Port
	// 0 picks a free port.
	Host string
	Port int
	// JetStream turns JetStream on. A hub or standalone node runs it; a leaf
	// node leaves it off so that the fleet's streams live in the hub and its
	// JetStream API requests reach the hub over the leaf link.
	JetStream bool
	// Domain is the JetStream domain, so that leaf nodes can address it.
	Domain string
	// LeafListen, "host:port", accepts leaf nodes (a hub). Port 0 picks one.
	LeafListen string
	// LeafTLS, when set, is required of leaf connections.
	LeafTLS *tls.Config
	// Remotes makes this server a leaf node of these hubs
	// (nats-leaf://host:port). LeafKey authenticates the link.
	Remotes   []string
	RemoteTLS *tls.Config
	LeafKey   *identity.Identity
	// ReconnectInterval is how often a leaf retries its hub. Default 1 s.
	ReconnectInterval time.Duration
	// Users are who may connect: each authenticates with its nkey, with
	// the permissions given (nil: everything).
	Users []User
	// MaxPayload bounds one message. Default 1 MiB.
	MaxPayload int32
	Logger     *slog.Logger
}

// User is one nkey allowed to connect.
type User struct {
	NKey        string
	Permissions *server.Permissions
	// Leaf also allows this key to connect as a leaf node (a member node).
	Leaf bool
}

// Server is an embedded nats-server.
type Server struct {
	srv  *server.Server
	opts *server.Options
	once sync.Once
}

// StartServer starts an embedded server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		NoSigs:     true, // the embedding process owns its signals
		MaxPayload: cfg.MaxPayload,
		JetStream:  cfg.JetStream,
		StoreDir:   cfg.StoreDir,
	}
	if cfg.JetStream {
		opts.JetStreamDomain = cfg.Domain
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 1 << 20
	}
	if cfg.JetStream && cfg.StoreDir == "" {
		return nil, errors.New("mesh: server: JetStream needs a StoreDir")
	}
	if cfg.JetStream {
		opts.StoreDir = filepath.Clean(cfg.StoreDir)
	}
	for _, u := range cfg.Users {
		if !nkeys.IsValidPublicUserKey(u.NKey) {
			return nil, fmt.Errorf("mesh: server: user nkey %q is not a public user nkey", u.NKey)
		}
		types := map[string]struct{}{"STANDARD": {}}
		if u.Leaf {
			types["LEAFNODE"] = struct{}{}
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: u.NKey, Permissions: u.Permissions, AllowedConnectionTypes: types})
	}
	if cfg.LeafListen != "" {
		host, port, err := splitHostPort(cfg.LeafListen)
		if err != nil {
			return nil, fmt.Errorf("mesh: server: leaf listen %q: %w", cfg.LeafListen, err)
		}
		opts.LeafNode.Host, opts.LeafNode.Port = host, port
		opts.LeafNode.TLSConfig = cfg.LeafTLS
	}
	if len(cfg.Remotes) > 0 {
		if cfg.LeafKey == nil {
			return nil, errors.New("mesh: server: a leaf node needs LeafKey to authenticate to its hub")
		}
		seed, err := cfg.LeafKey.Seed()
		if err != nil {
			return nil, err
		}
		r := &server.RemoteLeafOpts{Nkey: string(seed), TLSConfig: cfg.RemoteTLS, TLS: cfg.RemoteTLS != nil}
		for _, s := range cfg.Remotes {
			u, err := url.Parse(s)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("mesh: server: hub URL %q: want nats-leaf://host:port", s)
			}
			r.URLs = append(r.URLs, u)
		}
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{r}
		opts.LeafNode.ReconnectInterval = cfg.ReconnectInterval
		if opts.LeafNode.ReconnectInterval == 0 {
			opts.LeafNode.ReconnectInterval = time.Second
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("mesh: server: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(slogLogger{cfg.Logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("mesh: server %s did not become ready within 10 s (port %d in use?)", cfg.Name, cfg.Port)
	}
	return &Server{srv: srv, opts: opts}, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// LeafURL is the URL leaf nodes connect to, or "" when it accepts none.
func (s *Server) LeafURL() string {
	if s.opts.LeafNode.Port == 0 {
		return ""
	}
	return "nats-leaf://" + net.JoinHostPort(s.opts.LeafNode.Host, strconv.Itoa(s.opts.LeafNode.Port))
}

// NumLeafNodes is how many leaf nodes are connected.
func (s *Server) NumLeafNodes() int { return s.srv.NumLeafNodes() }

// ReadyForConnections waits up to d for the server to accept clients.
func (s *Server) ReadyForConnections(d time.Duration) bool { return s.srv.ReadyForConnections(d) }

// Shutdown stops the server and waits until it has stopped. It is
// idempotent and safe for concurrent use.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	})
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want 0..65535", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// slogLogger adapts nats-server's logger to slog. Notices are debug: the
// server's routine startup lines are noise in an agent's log.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Noticef(f string, a ...any) { s.l.Debug(fmt.Sprintf(f, a...), "part", "nats") }
func (s slogLogger) Warnf(f string, a ...any)   { s.l.Warn(fmt.Sprintf(f, a...), "part", "nats") }
func (s slogLogger) Fatalf(f string, a ...any)  { s.l.Error(fmt.Sprintf(f, a...), "part", "nats") }
func (s slogLogger) Errorf(f string, a ...any)  { s.l.Error(fmt.Sprintf(f, a...), "part", "nats") }
func (s slogLogger) Debugf(f string, a ...any)  {}
func (s slogLogger) Tracef(f string, a ...any)  {}

// agentPermissions confines an agent to its own subjects: it publishes
// on depai.agent.NAME.>, to any agent's inbox, on its own task subjects,
// its own registry key, and the JetStream API calls a consumer needs; it
// subscribes to its own subjects and its own reply inboxes. Replies to
// requests it receives are allowed once each.
func agentPermissions(name, domain string) *server.Permissions {
	pub := []string{
		"depai.agent." + name + ".>",
		"depai.agent.*.inbox",
		"depai.tasks.*." + name + ".*",
		"$KV." + registryBucket + "." + name,
		"$JS.ACK.>", "$JS.FC.>",
	}
	api := []string{"INFO", "STREAM.INFO.*", "STREAM.MSG.GET.*", "DIRECT.GET.>", "CONSUMER.>", "$KV." + registryBucket + "." + name}
	for _, a := range api {
		pub = append(pub, "$JS.API."+a)
		if domain != "" {
			pub = append(pub, "$JS."+domain+".API."+a)
		}
	}
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{
			"depai.agent." + name + ".>",
			inboxPrefix(name) + ".>",
			"depai.fleet.events",
		}},
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}
