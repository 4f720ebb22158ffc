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
