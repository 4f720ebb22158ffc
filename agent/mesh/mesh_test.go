package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestAskBetweenAgentsOfOneNode(t *testing.T) {
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice", "bob")})
	bob := mustAgent(t, n, "bob")
	if err := bob.Serve(HandlerFunc(func(_ context.Context, env Envelope) (json.RawMessage, error) {
		if env.FromName != "alice" || env.Hops != 1 || env.Session != "s1" {
			t.Errorf("bob got %+v", env)
		}
		return json.RawMessage(`{"ok":true}`), nil
	})); err != nil {
		t.Fatal(err)
	}
	alice := mustAgent(t, n, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := alice.Ask(ctx, "bob", json.RawMessage(`{"q": "status"}`), AskOptions{Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(rep.Payload) != `{"ok":true}` || rep.FromName != "bob" || rep.From != bob.DID() {
		t.Fatalf("reply %+v", rep)
	}
	// An agent nobody serves: unreachable, at once.
	if _, err := bob.Ask(ctx, "alice", json.RawMessage(`1`), AskOptions{}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("ask of an agent that serves nothing: %v", err)
	}
	if _, err := alice.Ask(ctx, "nobody", json.RawMessage(`1`), AskOptions{}); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("ask of an unknown agent: %v", err)
	}
}

func TestHandlerErrorIsRemoteError(t *testing.T) {
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice", "bob")})
	mustAgent(t, n, "bob").Serve(HandlerFunc(func(context.Context, Envelope) (json.RawMessage, error) {
		return nil, errors.New("battery too low")
	}))
	_, err := mustAgent(t, n, "alice").Ask(context.Background(), "bob", json.RawMessage(`{}`), AskOptions{Timeout: 5 * time.Second})
	var re *RemoteError
	if !errors.As(err, &re) || re.Agent != "bob" || !strings.Contains(re.Message, "battery too low") {
		t.Fatalf("err = %v", err)
	}
}

// Each agent is a NATS user confined to its own subjects: alice cannot
// publish on bob's subjects, read bob's inbox, or write bob's card; and a
// connection without a fleet key is not let in at all.
func TestPermissionsConfineAnAgent(t *testing.T) {
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice", "bob")})
	alice := mustAgent(t, n, "alice")
	errs := make(chan error, 8)
	nc, err := nats.Connect(n.ClientURL(), nats.Nkey(alice.cfg.Identity.NKey(), func(b []byte) ([]byte, error) { return alice.cfg.Identity.Sign(b), nil }),
		nats.CustomInboxPrefix(inboxPrefix("alice")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	expectViolation := func(what string) {
		t.Helper()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Fatalf("%s: %v, want a permissions violation", what, err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s was allowed", what)
		}
	}
	nc.Publish("depai.agent.bob.events", []byte("x"))
	expectViolation("publishing on bob's subject")
	nc.Publish("depai.tasks.T1.bob.accept", []byte("x"))
	expectViolation("publishing a task message as bob")
	nc.Publish("$KV.depai_registry.bob", []byte("x"))
	expectViolation("writing bob's registry card")
	nc.Subscribe("depai.agent.bob.inbox", func(*nats.Msg) {})
	expectViolation("subscribing to bob's inbox")
	nc.Subscribe("_INBOX_bob.>", func(*nats.Msg) {})
	expectViolation("subscribing to bob's replies")
	// Allowed: its own subjects and bob's inbox.
	if err := nc.Publish("depai.agent.alice.events", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(InboxSubject("bob"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	select {
	case err := <-errs:
		t.Fatalf("allowed publishes failed: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	if _, err := nats.Connect(n.ClientURL()); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous connection: %v, want an authorization error", err)
	}
	stranger := key(t, "stranger")
	if _, err := nats.Connect(n.ClientURL(), nats.Nkey(stranger.NKey(), func(b []byte) ([]byte, error) { return stranger.Sign(b), nil })); err == nil {
		t.Fatal("a key outside the fleet connected")
	}
}

func TestShutdownIsIdempotentAndLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	n, err := Start(context.Background(), Config{Name: "n1", Node: key(t, "n1"), DataDir: t.TempDir(), Agents: agents(t, "alice", "bob"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustAgent(t, n, "bob").Serve(echo)
	if _, err := mustAgent(t, n, "alice").Ask(context.Background(), "bob", json.RawMessage(`1`), AskOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { n.Shutdown(); close(done) }()
	n.Shutdown()
	<-done
	if n.goSafe(func() {}) {
		t.Fatal("a goroutine started after shutdown")
	}
	waitFor(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}

// ModeExternal joins a NATS server this node does not run (here a
// nats-server started on its own, with JetStream and the agents' nkeys as
// its users): requests, registry and tasks work as with the embedded one.
func TestExternalCluster(t *testing.T) {
	as := agents(t, "alice", "bob")
	nodeKey := key(t, "node ext")
	users := []User{{NKey: nodeKey.NKey()}}
	for _, a := range as {
		users = append(users, User{NKey: a.Identity.NKey(), Permissions: agentPermissions(a.Name, "")})
	}
	srv, err := StartServer(ServerConfig{Name: "cluster", JetStream: true, StoreDir: t.TempDir(), Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	n := startNode(t, Config{Name: "ext", Mode: ModeExternal, Node: nodeKey, URLs: []string{srv.ClientURL()}, Agents: as})
	registered(t, n, "bob")
	mustAgent(t, n, "bob").Serve(echo)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rep, err := mustAgent(t, n, "alice").Ask(ctx, "bob", json.RawMessage(`"x"`), AskOptions{}); err != nil || string(rep.Payload) != `"x"` {
		t.Fatalf("ask: %+v %v", rep, err)
	}
	task, err := mustAgent(t, n, "alice").Delegate(ctx, Offer{To: "bob", Kind: "k", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mustAgent(t, n, "bob").Accept(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	id := key(t, "x")
	ok := func(c Config) Config {
		if c.Name == "" {
			c.Name = "n1"
		}
		if c.Node == nil {
			c.Node = id
		}
		return c
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "bad name"}, "Config.Name"},
		{Config{Name: "_sys"}, "reserved"},
		{Config{Name: "n1"}, "Config.Node"},
		{ok(Config{}), "Config.DataDir"},
		{ok(Config{Mode: "mesh"}), `Config.Mode "mesh"`},
		{ok(Config{Mode: ModeLeaf, DataDir: "d"}), "Config.Hub"},
		{ok(Config{Mode: ModeExternal}), "Config.URLs"},
		{ok(Config{DataDir: "d", Agents: []AgentConfig{{Name: "a", Identity: id}, {Name: "a", Identity: id}}}), `Config.Agents[1]: name "a" is used twice`},
		{ok(Config{DataDir: "d", Agents: []AgentConfig{{Name: "a"}}}), "Config.Agents[0] (a): Identity"},
		{ok(Config{DataDir: "d", Members: []string{"did:web:x"}}), "Config.Members"},
		{ok(Config{DataDir: "d", Shared: []string{"fleet"}}), "Config.Shared and Config.Store"},
	} {
		_, err := Start(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}
