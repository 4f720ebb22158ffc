// Package memory is depai's shared, persistent memory: an append-only log of
// records (episodes, observations, readings, facts, receipts, audit entries)
// that agents write, query, recall and watch.
//
// Store is the contract every implementation satisfies; the memorytest
// package is its conformance suite. Open returns the badger-backed Store that
// depai runs on.
//
// Durability: Put returns once its records are synced (group commit: one
// fsync for every Put waiting); Put's records commit together or not at
// all; PutOnce adds an idempotency key to the same commit. Every commit
// also records the newest Seq in the store (kv.MetaLastSeq), and once it
// is synced the sequence mark outside badger's logs says so; Open and
// Verify compare the two, so a log that lost acknowledged commits is
// found even when what is left of it verifies. Open checks badger's files
// before badger reads (and would silently truncate) them; Verify checks
// everything; Repair salvages what verifies (see check.go, repair.go).
//
// Lock order in DB: closeMu, nsMu, watchMu and the recent ring's mutex are
// leaves — none is held while another is taken, nor across a wait on the
// committer. The committer goroutine is the only writer of badger; Close
// stops, in order: new operations (closeMu), watches and background loops
// (quit), the committer once in-flight writes are submitted (writes, then
// stop), reads, then badger, then the sequence mark.
package memory

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"time"
)

// Kind classifies a record. The set is open; these are the kinds depai itself writes.
type Kind string

const (
	KindMessage     Kind = "message"     // a chat message: operator, agent or model
	KindTurn        Kind = "turn"        // one whole agent turn: input, tool calls, results, reply
	KindObservation Kind = "observation" // something a sensor or agent noticed
	KindReading     Kind = "reading"     // a sensor or feed value
	KindFact        Kind = "fact"        // derived knowledge; supersedes older facts with the same key
	KindTask        Kind = "task"
	KindReceipt     Kind = "receipt"
	KindAudit       Kind = "audit" // a policy decision
)

// Record is one entry of the log. ID, Recorded and Seq are set by the Store on Put.
type Record struct {
	ID        string          `json:"id"`        // ULID; sortable by Recorded
	Seq       uint64          `json:"seq"`       // store-wide commit order, strictly increasing
	Namespace string          `json:"namespace"` // hierarchical, "/"-separated: "agent/robot-1", "fleet/site-a", "shared"
	Kind      Kind            `json:"kind"`
	Author    string          `json:"author,omitempty"` // agent or plugin that wrote it
	Time      time.Time       `json:"time"`             // when it happened; defaults to Recorded
	Recorded  time.Time       `json:"recorded"`         // when the store acknowledged it
	Text      string          `json:"text,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Tags      []string        `json:"tags,omitempty"`
	Key       string          `json:"key,omitempty"`       // for facts: what the fact is about
	ExpiresAt time.Time       `json:"expires_at,omitzero"` // zero: never
	Embedding *Embedding      `json:"embedding,omitempty"`
	// ValidTo is set by the Store when it returns a fact that a newer version
	// (same Namespace and Key) has superseded: the newer version's Time. The
	// fact was valid from its Time until ValidTo. Ignored on Put.
	ValidTo time.Time `json:"valid_to,omitzero"`
}

// Embedding is a vector with the model that produced it.
type Embedding struct {
	Model  string    `json:"model"`
	Vector []float32 `json:"vector"`
}

// Query selects records. Zero fields do not filter. Results come newest first
// (by Seq) unless Ascending is set.
type Query struct {
	Namespace string    // this namespace and every namespace below it
	Kinds     []Kind    // any of
	Author    string    // exactly
	Tags      []string  // all of
	Key       string    // exactly
	Since     time.Time // Time >= Since
	Until     time.Time // Time < Until
	AfterSeq  uint64    // Seq > AfterSeq; a cursor for resuming
	Limit     int       // 0: no limit
	Ascending bool
}

// Store is shared persistent memory. Implementations are safe for concurrent use.
type Store interface {
	// Put appends records and returns them as stored (ID, Seq, Recorded set).
	// When Put returns nil, every record survives a crash of the process.
	Put(ctx context.Context, recs ...Record) ([]Record, error)
	// Get returns the record with the given ID, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Query streams the records that match q. Expired records are never returned.
	Query(ctx context.Context, q Query) iter.Seq2[Record, error]
	// Close flushes and releases the store.
	Close() error
}

// Watcher streams records as they commit. The badger Store implements it.
type Watcher interface {
	// Watch yields, in Seq order, every record matching q with Seq > q.AfterSeq:
	// first those already stored, then new ones as they commit, until ctx ends
	// or the consumer stops. A slow consumer misses nothing: past a bounded
	// buffer the watch falls back to reading from its cursor.
	// q.Limit and q.Ascending are ignored.
	Watch(ctx context.Context, q Query) iter.Seq2[Record, error]
	// LastSeq is the Seq of the newest committed record, 0 when empty. Pass
	// it as AfterSeq to watch only what commits from now on.
	LastSeq() uint64
}

// Facts is implemented by stores that keep versioned facts. A KindFact record
// with a Key supersedes the previous fact with the same Namespace and Key; the
// old version is kept (see Record.ValidTo).
type Facts interface {
	// PutFact stores rec as the new version of the fact (rec.Namespace,
	// rec.Key) if the current version's Seq is expectedSeq (0: no current
	// version). Otherwise it returns an error wrapping ErrConflict and stores
	// nothing, so concurrent read-modify-write cycles never lose an update.
	PutFact(ctx context.Context, rec Record, expectedSeq uint64) (Record, error)
	// Fact returns the current version of a fact, or an error wrapping ErrNotFound.
	Fact(ctx context.Context, namespace, key string) (Record, error)
	// History returns every stored version of a fact, oldest first.
	History(ctx context.Context, namespace, key string) ([]Record, error)
}

// Errors a Store returns, wrapped with context; test them with errors.Is.
var (
	ErrNotFound = errors.New("memory: record not found")
	ErrInvalid  = errors.New("memory: invalid record")
	ErrClosed   = errors.New("memory: store closed")
	ErrTooLarge = errors.New("memory: record too large")
	ErrDenied   = errors.New("memory: access denied")
	ErrConflict = errors.New("memory: conflicting update")
	ErrDiskFull = errors.New("memory: disk full")
)
