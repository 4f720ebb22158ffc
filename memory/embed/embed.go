// Package embed turns text into vectors for memory recall.
//
// Embedder is the small interface recall depends on; Client implements it for
// any OpenAI-compatible POST /v1/embeddings endpoint (OpenAI, vLLM, Ollama,
// llama.cpp server, text-embeddings-inference). Client batches requests,
// caches vectors by a hash of model and text in a bounded in-RAM LRU, retries
// 429 and 5xx answers with backoff, and rejects vectors of the wrong size or
// malformed bodies with an error that says what was expected.
package embed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/depai/depai/internal/httpretry"
)

// Embedder turns texts into vectors, one per text, in order.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Model names the model whose vectors Embed returns; vectors of different
	// models are never compared.
	Model() string
	// Dims is the length of every vector Embed returns, or 0 while it is not
	// yet known (a Client without Config.Dims learns it from its first answer).
	Dims() int
}

// ErrDims reports a vector whose length differs from the expected one.
var ErrDims = errors.New("embed: wrong embedding dimensions")

// Config configures a Client. BaseURL and Model are required.
type Config struct {
	// BaseURL is the API root including its version, as OpenAI clients take
	// it: "https://api.openai.com/v1", "http://127.0.0.1:11434/v1". The client
	// posts to BaseURL + "/embeddings".
	BaseURL string
	Model   string
	APIKey  string // sent as "Authorization: Bearer"; empty: no header
	// Dims, when set, is sent as "dimensions" (models that support shortening,
	// such as text-embedding-3-*, honour it) and every vector must have it.
	// Zero: learned from the first answer, then enforced.
	Dims       int
	BatchSize  int           // texts per request; 0: 64
	CacheSize  int           // cached vectors; 0: 10000; negative: no cache
	MaxRetries int           // retries of a 429, 5xx or transport error; 0: 4; negative: none
	Backoff    time.Duration // first retry delay, doubled each retry; 0: 250ms
	HTTPClient *http.Client  // nil: a client with a 60 s timeout
}

// Client is an Embedder for an OpenAI-compatible embeddings endpoint. It is
// safe for concurrent use.
type Client struct {
	url     string
	cfg     Config
	http    *http.Client
	cache   *lru // nil: no cache
	dims    atomic.Int64
	backoff time.Duration
}

var _ Embedder = (*Client)(nil)

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("embed: Config.BaseURL is empty; want the API root, e.g. http://127.0.0.1:11434/v1")
	}
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, fmt.Errorf("embed: Config.BaseURL %q: want an http:// or https:// URL", cfg.BaseURL)
	}
	if cfg.Model == "" {
		return nil, errors.New("embed: Config.Model is empty; want the embedding model name, e.g. text-embedding-3-small")
	}
	if cfg.Dims < 0 {
		return nil, fmt.Errorf("embed: Config.Dims %d: want 0 (learn from the endpoint) or a positive size", cfg.Dims)
	}
	if cfg.BatchSize < 0 {
		return nil, fmt.Errorf("embed: Config.BatchSize %d: want 0 (default 64) or a positive size", cfg.BatchSize)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 64
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10000
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 250 * time.Millisecond
	}
	c := &Client{
		url:     strings.TrimRight(cfg.BaseURL, "/") + "/embeddings",
		cfg:     cfg,
		http:    cfg.HTTPClient,
		backoff: cfg.Backoff,
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.CacheSize > 0 {
		c.cache = newLRU(cfg.CacheSize)
	}
	c.dims.Store(int64(cfg.Dims))
	return c, nil
}

// Model returns the configured model name.
func (c *Client) Model() string { return c.cfg.Model }

// Dims returns the vector length: Config.Dims, else the length learned from
// the first answer, else 0.
func (c *Client) Dims() int { return int(c.dims.Load()) }

// Embed returns one vector per text. Cached vectors are served from RAM;
// the rest are fetched in batches of Config.BatchSize. The returned slices
// are shared with the cache: callers must not modify them.
func (c *Client) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	var missIdx []int // positions of the first occurrence of each uncached text
	keys := make([]cacheKey, len(texts))
	first := make(map[cacheKey]int)
	for i, t := range texts {
		if t == "" {
			return nil, fmt.Errorf("embed: text %d is empty; the endpoint rejects empty input", i)
		}
		keys[i] = c.key(t)
		if c.cache != nil {
			if v, ok := c.cache.get(keys[i]); ok {
				out[i] = v
				continue
			}
		}
		if _, seen := first[keys[i]]; !seen {
			first[keys[i]] = i
			missIdx = append(missIdx, i)
		}
	}
	for start := 0; start < len(missIdx); start += c.cfg.BatchSize {
		idx := missIdx[start:min(start+c.cfg.BatchSize, len(missIdx))]
		batch := make([]string, len(idx))
		for j, i := range idx {
			batch[j] = texts[i]
		}
		vecs, err := c.fetch(ctx, batch)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			out[i] = vecs[j]
			if c.cache != nil {
				c.cache.put(keys[i], vecs[j])
			}
		}
	}
	for i := range out {
		if out[i] == nil {
			out[i] = out[first[keys[i]]]
		}
	}
	return out, nil
}

type cacheKey [sha256.Size]byte

func (c *Client) key(text string) cacheKey {
	h := sha256.New()
	h.Write([]byte(c.cfg.Model))
	h.Write([]byte{0})
	h.Write([]byte(text))
	var k cacheKey
	h.Sum(k[:0])
	return k
}

// Wire format of POST /v1/embeddings.
type request struct {
	Input          []string `json:"input"`
	Model          string   `json:"model"`
	EncodingFormat string   `json:"encoding_format"`
	Dimensions     int      `json:"dimensions,omitempty"`
}

type response struct {
	Data []struct {
		Embedding []float32 `json:"embedding"`
		Index     *int      `json:"index"`
	} `json:"data"`
	Model string `json:"model"`
}

type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	} `json:"error"`
}

// fetch sends one batch, retrying 429, 5xx and transport errors.
func (c *Client) fetch(ctx context.Context, batch []string) ([][]float32, error) {
	body, err := json.Marshal(request{Input: batch, Model: c.cfg.Model, EncodingFormat: "float", Dimensions: c.cfg.Dims})
	if err != nil {
		return nil, fmt.Errorf("embed: encode request: %w", err)
	}
	delay := c.backoff
	for attempt := 0; ; attempt++ {
		vecs, retryAfter, err := c.post(ctx, body, len(batch))
		if err == nil {
			return vecs, nil
		}
		if retryAfter < 0 || attempt >= c.cfg.MaxRetries {
			return nil, err
		}
		wait := max(delay, retryAfter)
		wait += time.Duration(rand.Int64N(int64(wait)/4 + 1)) // jitter so many clients do not retry in step
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("embed: %s: %w (last error: %v)", c.url, ctx.Err(), err)
		case <-t.C:
		}
		delay *= 2
	}
}

// post makes one attempt. retryAfter < 0 means the error is permanent.
func (c *Client) post(ctx context.Context, body []byte, n int) (vecs [][]float32, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, -1, fmt.Errorf("embed: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, -1, fmt.Errorf("embed: POST %s: %w", c.url, ctx.Err())
		}
		return nil, 0, fmt.Errorf("embed: POST %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("embed: POST %s: read body: %w", c.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := snippet(raw)
		var ae apiError
		if json.Unmarshal(raw, &ae) == nil && ae.Error.Message != "" {
			msg = ae.Error.Message
		}
		err := fmt.Errorf("embed: POST %s: %s: %s", c.url, resp.Status, msg)
		if httpretry.Retryable(resp.StatusCode) {
			wait, _ := httpretry.After(resp.Header.Get("Retry-After"), time.Now())
			return nil, min(wait, maxRetryAfter), err
		}
		return nil, -1, err
	}
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, -1, fmt.Errorf("embed: POST %s: body is not an embeddings response (%v): %s", c.url, err, snippet(raw))
	}
	if len(r.Data) != n {
		return nil, -1, fmt.Errorf("embed: POST %s: got %d embeddings for %d inputs", c.url, len(r.Data), n)
	}
	vecs = make([][]float32, n)
	for i, d := range r.Data {
		idx := i
		if d.Index != nil {
			idx = *d.Index
		}
		if idx < 0 || idx >= n || vecs[idx] != nil {
			return nil, -1, fmt.Errorf("embed: POST %s: data[%d].index %d is out of range or repeated (want each of 0..%d once)", c.url, i, idx, n-1)
		}
		if len(d.Embedding) == 0 {
			return nil, -1, fmt.Errorf("embed: POST %s: data[%d].embedding is empty", c.url, i)
		}
		for _, x := range d.Embedding {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, -1, fmt.Errorf("embed: POST %s: data[%d].embedding holds a non-finite value", c.url, i)
			}
		}
		if err := c.checkDims(len(d.Embedding)); err != nil {
			return nil, -1, fmt.Errorf("embed: POST %s: data[%d]: %w", c.url, i, err)
		}
		vecs[idx] = d.Embedding
	}
	return vecs, 0, nil
}

// checkDims enforces one vector length per client, learning it on first use.
func (c *Client) checkDims(n int) error {
	if c.dims.CompareAndSwap(0, int64(n)) {
		return nil
	}
	if want := int(c.dims.Load()); n != want {
		return fmt.Errorf("%w: model %s returned %d dimensions, want %d", ErrDims, c.cfg.Model, n, want)
	}
	return nil
}

// maxRetryAfter caps the wait an endpoint's Retry-After may impose on one
// retry.
const maxRetryAfter = time.Minute

func snippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = s[:max] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return strconv.Quote(s)
}
