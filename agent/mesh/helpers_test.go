package mesh

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/identity"
)

// key makes a deterministic identity for a test name.
func key(t testing.TB, name string) *identity.Identity {
	t.Helper()
	seed := sha256.Sum256([]byte("depai mesh test " + name))
	id, err := identity.FromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// rejections collects what a node refused.
type rejections struct {
	mu  sync.Mutex
	got []Rejection
}

func (r *rejections) add(x Rejection) {
	r.mu.Lock()
	r.got = append(r.got, x)
	r.mu.Unlock()
}

func (r *rejections) list() []Rejection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Rejection(nil), r.got...)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("MESH_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// agents makes AgentConfigs with deterministic keys.
func agents(t testing.TB, names ...string) []AgentConfig {
	out := make([]AgentConfig, len(names))
	for i, n := range names {
		out[i] = AgentConfig{Name: n, Identity: key(t, n), Role: "test", Tools: []string{n + ".tool"}}
	}
	return out
}

// startNode starts a node and shuts it down with the test.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	if cfg.Node == nil {
		cfg.Node = key(t, "node "+cfg.Name)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	return n
}

// echo answers with the request's payload.
var echo = HandlerFunc(func(_ context.Context, env Envelope) (json.RawMessage, error) { return env.Payload, nil })

func mustAgent(t testing.TB, n *Node, name string) *Agent {
	t.Helper()
	a, ok := n.Agent(name)
	if !ok {
		t.Fatalf("no agent %s", name)
	}
	return a
}

// registered waits until node n has a live card for name.
func registered(t testing.TB, n *Node, name string) {
	t.Helper()
	waitFor(t, 10*time.Second, name+"'s card on "+n.cfg.Name, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, ok := n.reg.lookup(ctx, name)
		return ok
	})
}

// freePort finds a loopback port that is free now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
