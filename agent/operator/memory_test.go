package operator_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
)

// memoryFixture is a real store, audit log and policy engine behind a real
// server.
type memoryFixture struct {
	dir    string
	db     *memory.DB
	log    *policy.Log
	engine *policy.Engine
	srv    *operator.Server
}

var putOperators = []operator.Operator{
	{Name: "operator", Role: policy.RoleAdmin, Token: testToken},
	{Name: "vic", Role: policy.RoleViewer, Token: "viewer-token"},
	{Name: "otto", Role: policy.RoleOperator, Token: "operator-token"},
}

func openMemoryFixture(t testing.TB, dir string) *memoryFixture {
	t.Helper()
	return openMemoryFixtureWith(t, memory.Config{Dir: dir + "/memory"})
}

// openMemoryFixtureWith is openMemoryFixture with the store's config
// (Dir is DIR/memory).
func openMemoryFixtureWith(t testing.TB, cfg memory.Config) *memoryFixture {
	t.Helper()
	ctx := context.Background()
	dir := strings.TrimSuffix(cfg.Dir, "/memory")
	f := &memoryFixture{dir: dir}
	var err error
	if f.db, err = memory.Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if f.log, err = policy.OpenLog(ctx, f.db); err != nil {
		t.Fatal(err)
	}
	state, err := policy.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.engine, err = policy.New(ctx, policy.Config{Log: f.log, State: state}); err != nil {
		t.Fatal(err)
	}
	f.srv, err = operator.NewServer(operator.Config{Addr: "127.0.0.1:0", Agents: newScriptedFleet("a").Agents(), Operators: putOperators, Memory: f.engine, BodyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve()
	return f
}

// close stops the server, then the log (which stores what is pending), then
// the store.
func (f *memoryFixture) close(t testing.TB) {
	t.Helper()
	// A connection the client dialled for a racing put and never used is
	// new, not idle, to the server, and Shutdown waits 5 s for it.
	http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := f.log.Close(); err != nil {
		t.Error(err)
	}
	if err := f.db.Close(); err != nil {
		t.Error(err)
	}
}

func (f *memoryFixture) count(t *testing.T, ns string) int {
	t.Helper()
	n := 0
	for _, err := range f.db.Query(context.Background(), memory.Query{Namespace: ns}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestPutIdempotent: a retried put never writes twice — not at once, not
// after a restart — and the key with another body is a 422 that stores
// nothing; every put is on the audit record.
func TestPutIdempotent(t *testing.T) {
	dir := t.TempDir()
	f := openMemoryFixture(t, dir)
	body := `{"kind":"observation","text":"pallet at B2","tags":["site:a"]}`
	bearer := "Bearer " + testToken
	resp, got := request(t, f.srv, "POST", "/v1/memory/fleet/site-a", bearer, body, "Idempotency-Key", "3f2a-1")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first put: %d %s", resp.StatusCode, got)
	}
	var first operator.PutResult
	if err := json.Unmarshal([]byte(got), &first); err != nil || first.Replayed || first.Record.Author != "operator" || first.Record.Namespace != "fleet/site-a" {
		t.Fatalf("first put = %s (%v)", got, err)
	}
	retry := func(when string) {
		t.Helper()
		resp, got := request(t, f.srv, "POST", "/v1/memory/fleet/site-a", bearer, body, "Idempotency-Key", "3f2a-1")
		var again operator.PutResult
		_ = json.Unmarshal([]byte(got), &again)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Idempotent-Replayed") != "true" || !again.Replayed || again.Record.ID != first.Record.ID {
			t.Errorf("retry %s: %d %s (replayed header %q); want 200 with the first record", when, resp.StatusCode, got, resp.Header.Get("Idempotent-Replayed"))
		}
	}
	retry("at once")
	// Concurrent retries: one record, every answer the first one's.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { retry("concurrently") })
	}
	wg.Wait()
	var created atomic.Int32
	for range 16 {
		wg.Go(func() {
			resp, got := request(t, f.srv, "POST", "/v1/memory/fleet/site-a", bearer, `{"kind":"observation","text":"racing"}`, "Idempotency-Key", "race-1")
			switch resp.StatusCode {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusOK:
			default:
				t.Errorf("racing put: %d %s", resp.StatusCode, got)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Errorf("%d racing puts with one key were created, want 1", created.Load())
	}
	resp, got = request(t, f.srv, "POST", "/v1/memory/fleet/site-a", bearer, strings.Replace(body, "B2", "B3", 1), "Idempotency-Key", "3f2a-1")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(decodeError(t, got, operator.CodeKeyReused), "3f2a-1") {
		t.Errorf("the key with another body: %d %s; want 422 %s naming the key", resp.StatusCode, got, operator.CodeKeyReused)
	}
	// Another operator's equal key is its own.
	if resp, got := request(t, f.srv, "POST", "/v1/memory/fleet/site-a", "Bearer operator-token", body, "Idempotency-Key", "3f2a-1"); resp.StatusCode != http.StatusCreated {
		t.Errorf("another operator's key: %d %s; want 201", resp.StatusCode, got)
	}
	f.close(t)

	f = openMemoryFixture(t, dir)
	defer f.close(t)
	retry("after a restart")
	if n := f.count(t, "fleet/site-a"); n != 3 {
		t.Errorf("%d records stored, want 3 (one per operator, one of the race)", n)
	}
	f.log.Close()
	rep, err := policy.Verify(context.Background(), f.db)
	if err != nil || !rep.OK() {
		t.Fatalf("audit: %v %s", err, rep)
	}
	// 37 puts, each a decision and an outcome.
	if rep.Entries != 74 {
		t.Errorf("%d audit entries, want 74\n%s", rep.Entries, rep)
	}
}

// The audit decision of a put records what was asked: the idempotency key
// (quoted as JSON, whatever printable characters it has) and the body.
func TestPutAuditArgs(t *testing.T) {
	f := openMemoryFixture(t, t.TempDir())
	defer f.close(t)
	body := `{"kind": "observation", "text": "pallet <17>"}`
	for _, key := range []string{`k"1\x`, ""} {
		resp, got := request(t, f.srv, "POST", "/v1/memory/fleet/site-a", "Bearer "+testToken, body, "Idempotency-Key", key)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("put: %d %s", resp.StatusCode, got)
		}
		var found bool
		for r, err := range f.db.Query(context.Background(), memory.Query{Namespace: policy.AuditNamespace, Tags: []string{"phase:decision"}, Limit: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			var e policy.Entry
			if err := json.Unmarshal(r.Data, &e); err != nil {
				t.Fatal(err)
			}
			var args struct {
				Key    *string         `json:"idempotency_key"`
				Record json.RawMessage `json:"record"`
			}
			if err := json.Unmarshal(e.Args, &args); err != nil {
				t.Fatalf("args %s: %v", e.Args, err)
			}
			gotKey := ""
			if args.Key != nil {
				gotKey = *args.Key
			}
			var rec operator.Put
			if gotKey != key || (key == "" && args.Key != nil) || json.Unmarshal(args.Record, &rec) != nil || rec.Text != "pallet <17>" {
				t.Errorf("decision args %s, want key %q and the body", e.Args, key)
			}
			found = true
		}
		if !found {
			t.Fatal("no decision recorded")
		}
	}
}

// TestPutRefused: the route is behind the operator role and the audit
// namespace is the core's; bad input is a clear error that stores nothing.
func TestPutRefused(t *testing.T) {
	f := openMemoryFixture(t, t.TempDir())
	defer f.close(t)
	bearer := "Bearer " + testToken
	ok := `{"kind":"observation","text":"x"}`
	for _, c := range []struct {
		name, path, auth, body, key string
		status                      int
		code, says                  string
	}{
		{"viewer", "/v1/memory/shared", "Bearer viewer-token", ok, "", 403, operator.CodeForbidden, "operator role"},
		{"no token", "/v1/memory/shared", "", ok, "", 401, operator.CodeUnauthorized, "bearer"},
		{"audit namespace", "/v1/memory/audit", bearer, ok, "", 403, operator.CodeForbidden, "only depai writes audit records"},
		{"audit kind", "/v1/memory/shared", bearer, `{"kind":"audit","text":"x"}`, "", 403, operator.CodeForbidden, "audit"},
		{"bad namespace", "/v1/memory/a/b%20c", bearer, ok, "", 400, operator.CodeBadRecord, "namespace"},
		{"no kind", "/v1/memory/shared", bearer, `{"text":"x"}`, "", 400, operator.CodeBadRecord, "kind is empty"},
		{"unknown field", "/v1/memory/shared", bearer, `{"kind":"observation","txt":"x"}`, "", 400, operator.CodeBadJSON, "txt"},
		{"fact without key", "/v1/memory/shared", bearer, `{"kind":"fact","text":"x"}`, "", 400, operator.CodeBadRecord, "needs a key"},
		{"long key", "/v1/memory/shared", bearer, ok, strings.Repeat("k", 200), 400, operator.CodeBadKey, "128"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.key != "" {
				hdr = []string{"Idempotency-Key", c.key}
			}
			resp, got := request(t, f.srv, "POST", c.path, c.auth, c.body, hdr...)
			if resp.StatusCode != c.status || !strings.Contains(strings.ToLower(decodeError(t, got, c.code)), strings.ToLower(c.says)) {
				t.Errorf("%d %s; want %d %s saying %q", resp.StatusCode, got, c.status, c.code, c.says)
			}
		})
	}
	if resp, got := request(t, f.srv, "GET", "/v1/memory/shared", bearer, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d %s; want 405", resp.StatusCode, got)
	}
	if n := f.count(t, "shared"); n != 0 {
		t.Errorf("%d records stored by refused puts", n)
	}
}
