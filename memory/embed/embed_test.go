package embed_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/memory/embed"
	"github.com/depai/depai/memory/embed/embedtest"
)

// The tests run against embedtest: a real HTTP server on 127.0.0.1 speaking
// the OpenAI /v1/embeddings wire format; only its vectors are scripted.

func newClient(t *testing.T, srv *embedtest.Server, mut func(*embed.Config)) *embed.Client {
	t.Helper()
	cfg := embed.Config{BaseURL: srv.URL(), Model: "test-embed", APIKey: "k", Backoff: time.Millisecond}
	if mut != nil {
		mut(&cfg)
	}
	c, err := embed.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEmbedBatchesAndOrders(t *testing.T) {
	srv := embedtest.New(16)
	defer srv.Close()
	c := newClient(t, srv, func(c *embed.Config) { c.BatchSize = 2 })
	texts := []string{"red robot", "blue drone", "green rover", "red robot", "yellow buoy"}
	vecs, err := c.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, txt := range texts {
		if want := embedtest.Vector(txt, 16); fmt.Sprint(vecs[i]) != fmt.Sprint(want) {
			t.Errorf("text %d %q: got %v, want %v", i, txt, vecs[i], want)
		}
	}
	// 4 distinct texts in batches of 2: 2 requests, 4 inputs (the duplicate is sent once).
	if req, in := srv.Requests(); req != 2 || in != 4 {
		t.Errorf("requests, inputs = %d, %d; want 2, 4", req, in)
	}
	if c.Dims() != 16 {
		t.Errorf("Dims = %d after first answer, want 16", c.Dims())
	}
	if got := srv.Authorization(); got != "Bearer k" {
		t.Errorf("Authorization = %q, want %q", got, "Bearer k")
	}
}

func TestEmbedCache(t *testing.T) {
	srv := embedtest.New(8)
	defer srv.Close()
	c := newClient(t, srv, func(c *embed.Config) { c.CacheSize = 2 })
	ctx := context.Background()
	for _, txt := range []string{"a", "b", "a", "b"} {
		if _, err := c.Embed(ctx, []string{txt}); err != nil {
			t.Fatal(err)
		}
	}
	if req, _ := srv.Requests(); req != 2 {
		t.Fatalf("requests = %d, want 2 (second a and b from cache)", req)
	}
	// "c" evicts the least recently used ("a"); "b" stays cached.
	for _, txt := range []string{"c", "b", "a"} {
		if _, err := c.Embed(ctx, []string{txt}); err != nil {
			t.Fatal(err)
		}
	}
	if req, _ := srv.Requests(); req != 4 {
		t.Fatalf("requests = %d, want 4 (c and evicted a fetched)", req)
	}
	// The cache is keyed by model too: another model's client does not share vectors.
	other := newClient(t, srv, func(c *embed.Config) { c.Model = "other" })
	if _, err := other.Embed(ctx, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if req, _ := srv.Requests(); req != 5 {
		t.Fatalf("requests = %d, want 5", req)
	}
}

func TestEmbedRetries(t *testing.T) {
	srv := embedtest.New(8)
	defer srv.Close()
	srv.Script(
		embedtest.Fault{Status: 429, Body: `{"error":{"message":"rate limited","type":"rate_limit"}}`, RetryAfter: "0"},
		embedtest.Fault{Status: 503, Body: "overloaded"},
	)
	c := newClient(t, srv, nil)
	vecs, err := c.Embed(context.Background(), []string{"hello"})
	if err != nil {
		t.Fatalf("Embed after 429 and 503: %v", err)
	}
	if len(vecs) != 1 || len(vecs[0]) != 8 {
		t.Fatalf("got %v", vecs)
	}
	if req, _ := srv.Requests(); req != 3 {
		t.Errorf("requests = %d, want 3", req)
	}
}

func TestEmbedErrors(t *testing.T) {
	tests := []struct {
		name   string
		dims   int
		faults []embedtest.Fault
		texts  []string
		want   string
		is     error
	}{
		{name: "wrong dims", dims: 8, faults: []embedtest.Fault{{Dims: 4}}, texts: []string{"x"}, want: "returned 4 dimensions, want 8", is: embed.ErrDims},
		{name: "garbage body", faults: []embedtest.Fault{{Body: "<html>oops</html>"}}, texts: []string{"x"}, want: "not an embeddings response"},
		{name: "too few vectors", faults: []embedtest.Fault{{Body: `{"data":[],"model":"m"}`}}, texts: []string{"x"}, want: "got 0 embeddings for 1 inputs"},
		{name: "bad index", faults: []embedtest.Fault{{Body: `{"data":[{"embedding":[1,2],"index":5}],"model":"m"}`}}, texts: []string{"x"}, want: "index 5 is out of range"},
		{name: "client error not retried", faults: []embedtest.Fault{{Status: 400, Body: `{"error":{"message":"model not found","type":"invalid_request_error"}}`}}, texts: []string{"x"}, want: "400 Bad Request: model not found"},
		{name: "retries exhausted", faults: []embedtest.Fault{{Status: 500}, {Status: 500}, {Status: 500}, {Status: 500}, {Status: 500}}, texts: []string{"x"}, want: "500 Internal Server Error"},
		{name: "empty text", texts: []string{"ok", ""}, want: "text 1 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := embedtest.New(8)
			defer srv.Close()
			srv.Script(tt.faults...)
			c := newClient(t, srv, func(c *embed.Config) { c.Dims = tt.dims })
			_, err := c.Embed(context.Background(), tt.texts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

func TestEmbedLearnsThenEnforcesDims(t *testing.T) {
	srv := embedtest.New(8)
	defer srv.Close()
	c := newClient(t, srv, nil)
	if _, err := c.Embed(context.Background(), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	srv.Script(embedtest.Fault{Dims: 5})
	_, err := c.Embed(context.Background(), []string{"b"})
	if !errors.Is(err, embed.ErrDims) {
		t.Fatalf("err = %v, want ErrDims", err)
	}
}

func TestEmbedContextCancelDuringBackoff(t *testing.T) {
	srv := embedtest.New(8)
	defer srv.Close()
	srv.Script(embedtest.Fault{Status: 429, RetryAfter: "30"})
	c := newClient(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Embed(ctx, []string{"a"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []embed.Config{
		{Model: "m"},
		{BaseURL: "127.0.0.1:80/v1", Model: "m"},
		{BaseURL: "http://x/v1"},
		{BaseURL: "http://x/v1", Model: "m", Dims: -1},
		{BaseURL: "http://x/v1", Model: "m", BatchSize: -2},
	} {
		if _, err := embed.New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

func ExampleNew() {
	srv := embedtest.New(4)
	defer srv.Close()
	c, err := embed.New(embed.Config{BaseURL: srv.URL(), Model: "text-embedding-3-small", BatchSize: 32})
	if err != nil {
		fmt.Println(err)
		return
	}
	vecs, err := c.Embed(context.Background(), []string{"robot at dock 3"})
	fmt.Println(len(vecs), len(vecs[0]), c.Dims(), err)
	// Output: 1 4 4 <nil>
}
