// Package embedtest runs an OpenAI-compatible embeddings server on
// 127.0.0.1 for tests. The protocol is real — POST /v1/embeddings with the
// OpenAI request and response bodies — and the vectors are scripted: each
// text becomes a deterministic hashed bag-of-words vector, so texts that share
// words are close in cosine similarity and a test can predict rankings.
package embedtest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"unicode"
)

// Server is an embeddings endpoint on loopback. Close it when done.
type Server struct {
	srv  *httptest.Server
	dims int

	mu       sync.Mutex
	faults   []Fault
	requests int
	inputs   int
	auth     string
}

// Fault scripts one answer in place of a normal one.
type Fault struct {
	Status     int    // HTTP status; 0 with Body set: 200
	Body       string // raw body
	RetryAfter string // Retry-After header
	Dims       int    // answer normally but with vectors of this size
}

// New starts a server whose vectors have dims dimensions (when a request
// asks for "dimensions", that size is used instead, as OpenAI does).
func New(dims int) *Server {
	s := &Server{dims: dims}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// URL is the API root to put in embed.Config.BaseURL (it ends in /v1).
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Script queues faults; each answers one request, in order.
func (s *Server) Script(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// Requests returns how many requests arrived and how many input texts they carried.
func (s *Server) Requests() (requests, inputs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.inputs
}

// Authorization returns the Authorization header of the latest request.
func (s *Server) Authorization() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth
}

// Vector is the vector the server returns for text at the given size.
func Vector(text string, dims int) []float32 {
	v := make([]float32, dims)
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		h := fnv.New64a()
		h.Write([]byte(w))
		x := h.Sum64()
		sign := float32(1)
		if x>>63 == 1 {
			sign = -1
		}
		v[int(x%uint64(dims))] += sign
	}
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 {
		v[0] = 1
		return v
	}
	inv := float32(1 / math.Sqrt(n))
	for i := range v {
		v[i] *= inv
	}
	return v
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.Error(w, `{"error":{"message":"not found","type":"invalid_request_error"}}`, http.StatusNotFound)
		return
	}
	var req struct {
		Input      []string `json:"input"`
		Model      string   `json:"model"`
		Dimensions int      `json:"dimensions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" || len(req.Input) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":"bad request: %v","type":"invalid_request_error"}}`, err)
		return
	}
	s.mu.Lock()
	s.requests++
	s.inputs += len(req.Input)
	s.auth = r.Header.Get("Authorization")
	var f Fault
	if len(s.faults) > 0 {
		f = s.faults[0]
		s.faults = s.faults[1:]
	}
	s.mu.Unlock()
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Status != 0 || f.Body != "" {
		w.WriteHeader(max(f.Status, http.StatusOK))
		w.Write([]byte(f.Body))
		return
	}
	dims := s.dims
	if req.Dimensions > 0 {
		dims = req.Dimensions
	}
	if f.Dims > 0 {
		dims = f.Dims
	}
	type datum struct {
		Object    string    `json:"object"`
		Embedding []float32 `json:"embedding"`
		Index     int       `json:"index"`
	}
	resp := struct {
		Object string  `json:"object"`
		Data   []datum `json:"data"`
		Model  string  `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: req.Model}
	// Answer in reverse order: the index field, not the position, says which input a vector is for.
	for i := len(req.Input) - 1; i >= 0; i-- {
		resp.Data = append(resp.Data, datum{Object: "embedding", Embedding: Vector(req.Input[i], dims), Index: i})
		resp.Usage.PromptTokens += len(strings.Fields(req.Input[i]))
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}
