package mesh

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/depai/depai/agent/identity"
)

// Envelope is one signed message between fleet members. The signature
// covers the canonical encoding of every other field (see canonical), so
// nothing in it can be changed, and it names its recipient, so it cannot be
// redirected.
type Envelope struct {
	Schema   string          `json:"schema"`            // what the payload is, e.g. "depai.ask"
	Version  int             `json:"v"`                 // of the schema, from 1
	From     string          `json:"from"`              // sender's did:key
	FromName string          `json:"from_name"`         // sender's agent or node name
	To       string          `json:"to,omitempty"`      // recipient's did:key; "" for a broadcast
	Session  string          `json:"session,omitempty"` // conversation it belongs to
	Nonce    string          `json:"nonce"`             // unique per sender; replays are refused
	Re       string          `json:"re,omitempty"`      // a reply: the request's nonce
	Expires  time.Time       `json:"exp"`
	Hops     int             `json:"hops"` // agent-to-agent forwards so far; loops end at Limits.MaxHops
	Payload  json.RawMessage `json:"payload,omitempty"`
	Sig      []byte          `json:"sig,omitempty"`
}

// signingDomain separates depai envelope signatures from any other use of
// the same key (the key also answers NATS's nonce challenge).
const signingDomain = "depai.envelope.v1\x00"

// canonical is the byte string the signature covers: the domain, then each
// field as a uvarint length and its bytes, in a fixed order.
func (e *Envelope) canonical() []byte {
	var b bytes.Buffer
	b.Grow(len(signingDomain) + 256 + len(e.Payload))
	b.WriteString(signingDomain)
	var tmp [binary.MaxVarintLen64]byte
	field := func(s []byte) {
		b.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(s)))])
		b.Write(s)
	}
	num := func(v int64) { b.Write(tmp[:binary.PutVarint(tmp[:], v)]) }
	field([]byte(e.Schema))
	num(int64(e.Version))
	field([]byte(e.From))
	field([]byte(e.FromName))
	field([]byte(e.To))
	field([]byte(e.Session))
	field([]byte(e.Nonce))
	field([]byte(e.Re))
	num(e.Expires.UnixNano())
	num(int64(e.Hops))
	field(e.Payload)
	return b.Bytes()
}

// seal fills From, FromName, Nonce (when empty), normalizes Expires and
// Payload, signs, and returns the wire form.
func seal(id *identity.Identity, name string, e *Envelope) ([]byte, error) {
	e.From, e.FromName = id.DID(), name
	if e.Nonce == "" {
		var n [16]byte
		if _, err := rand.Read(n[:]); err != nil {
			return nil, err
		}
		e.Nonce = base64.RawURLEncoding.EncodeToString(n[:])
	}
	e.Expires = e.Expires.UTC().Round(0)
	if len(e.Payload) > 0 {
		// The wire form carries the payload compacted; sign that form.
		var c bytes.Buffer
		if err := json.Compact(&c, e.Payload); err != nil {
			return nil, fmt.Errorf("mesh: payload is not JSON: %w", err)
		}
		e.Payload = c.Bytes()
	}
	e.Sig = id.Sign(e.canonical())
	return json.Marshal(e)
}

// Reason says why a message was refused.
type Reason string

const (
	ReasonOversize     Reason = "oversize"
	ReasonMalformed    Reason = "malformed"
	ReasonUnsigned     Reason = "unsigned"
	ReasonBadSignature Reason = "bad_signature"
	ReasonForeign      Reason = "foreign"   // the sender is not a fleet member
	ReasonMisrouted    Reason = "misrouted" // addressed to someone else
	ReasonExpired      Reason = "expired"
	ReasonReplay       Reason = "replay"
	ReasonHops         Reason = "hops"
	ReasonRate         Reason = "rate"
	ReasonBadCard      Reason = "bad_card" // a registry card whose signature or name does not match
	ReasonBadTask      Reason = "bad_task" // a task message that breaks the task's rules
)

// Rejection describes a refused message, for the audit log. From and
// FromName are what the message claimed; they are proven only for reasons
// checked after the signature (foreign, misrouted, expired, replay, hops,
// rate, bad_task).
type Rejection struct {
	Time     time.Time `json:"time"`
	Reason   Reason    `json:"reason"`
	Detail   string    `json:"detail"`
	Subject  string    `json:"subject"`
	Agent    string    `json:"agent,omitempty"` // the local agent or node that received it
	From     string    `json:"from,omitempty"`
	FromName string    `json:"from_name,omitempty"`
	Schema   string    `json:"schema,omitempty"`
	Size     int       `json:"size"`
}

// RejectError is the error a refused message produces.
type RejectError struct{ Rejection }

func (e *RejectError) Error() string {
	return fmt.Sprintf("mesh: message on %s refused (%s): %s", e.Subject, e.Reason, e.Detail)
}

// Limits bound what a receiver accepts. Zero fields take the defaults.
type Limits struct {
	MaxMessageBytes int           // default 256 KiB
	MaxHops         int           // default 8
	MaxTTL          time.Duration // the furthest expiry accepted; default 5 min
	Rate            float64       // messages per second per sender; default 100
	Burst           int           // default 200
}

func (l Limits) withDefaults() Limits {
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = 256 << 10
	}
	if l.MaxHops == 0 {
		l.MaxHops = 8
	}
	if l.MaxTTL == 0 {
		l.MaxTTL = 5 * time.Minute
	}
	if l.Rate == 0 {
		l.Rate = 100
	}
	if l.Burst == 0 {
		l.Burst = 200
	}
	return l
}

// verifier checks envelopes on receipt: size, form, signature, membership,
// recipient, expiry, replay, hops and the sender's rate. One verifier serves
// a node; it is safe for concurrent use.
type verifier struct {
	limits Limits
	member func(did, name string) bool
	now    func() time.Time

	mu       sync.Mutex // guards seen, limiters, lastPrune
	seen     map[string]time.Time
	limiters map[string]*rate.Limiter
	pruned   time.Time
}

func newVerifier(l Limits, member func(did, name string) bool) *verifier {
	return &verifier{limits: l.withDefaults(), member: member, now: time.Now,
		seen: map[string]time.Time{}, limiters: map[string]*rate.Limiter{}}
}

// open verifies data as an envelope addressed to toDID ("" accepts a
// broadcast or any recipient). On refusal the error is a *RejectError.
func (v *verifier) open(subject string, data []byte, toDID string) (Envelope, error) {
	var e Envelope
	rej := func(r Reason, detail string, a ...any) (Envelope, error) {
		return Envelope{}, &RejectError{Rejection{Time: v.now(), Reason: r, Detail: fmt.Sprintf(detail, a...), Subject: subject,
			From: clip(e.From), FromName: clip(e.FromName), Schema: clip(e.Schema), Size: len(data)}}
	}
	if len(data) > v.limits.MaxMessageBytes {
		return rej(ReasonOversize, "%d bytes, the limit is %d", len(data), v.limits.MaxMessageBytes)
	}
	if err := decodeStrict(data, &e); err != nil {
		return rej(ReasonMalformed, "%v", err)
	}
	if e.Schema == "" || e.Version < 1 || e.Nonce == "" || e.Expires.IsZero() {
		return rej(ReasonMalformed, "schema, v >= 1, nonce and exp are required")
	}
	if len(e.Sig) == 0 {
		return rej(ReasonUnsigned, "no signature")
	}
	if err := identity.Verify(e.From, e.canonical(), e.Sig); err != nil {
		return rej(ReasonBadSignature, "signature does not verify against from %s: %v", clip(e.From), err)
	}
	if !v.member(e.From, e.FromName) {
		return rej(ReasonForeign, "%s (%q) is not a member of this fleet", e.From, e.FromName)
	}
	if toDID != "" && e.To != toDID {
		return rej(ReasonMisrouted, "addressed to %s, received by %s", clip(e.To), toDID)
	}
	now := v.now()
	if !now.Before(e.Expires) {
		return rej(ReasonExpired, "expired at %s, now %s", e.Expires.Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	if e.Expires.Sub(now) > v.limits.MaxTTL {
		return rej(ReasonExpired, "expires at %s, more than %s ahead", e.Expires.Format(time.RFC3339Nano), v.limits.MaxTTL)
	}
	if e.Hops < 0 || e.Hops > v.limits.MaxHops {
		return rej(ReasonHops, "%d hops, the limit is %d", e.Hops, v.limits.MaxHops)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.pruned) > time.Second {
		v.pruneLocked(now)
	}
	key := e.From + "\x00" + e.Nonce
	if _, ok := v.seen[key]; ok {
		return rej(ReasonReplay, "nonce %s from %s was seen before", clip(e.Nonce), e.From)
	}
	lim, ok := v.limiters[e.From]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(v.limits.Rate), v.limits.Burst)
		v.limiters[e.From] = lim
	}
	if !lim.AllowN(now, 1) {
		return rej(ReasonRate, "%s sends more than %g messages/s (burst %d)", e.From, v.limits.Rate, v.limits.Burst)
	}
	// Remembered until it expires: an expired replay is refused as expired.
	v.seen[key] = e.Expires
	return e, nil
}

// pruneLocked forgets nonces that have expired and limiters that are full.
func (v *verifier) pruneLocked(now time.Time) {
	for k, exp := range v.seen {
		if !now.Before(exp) {
			delete(v.seen, k)
		}
	}
	for k, l := range v.limiters {
		if l.TokensAt(now) >= float64(v.limits.Burst) {
			delete(v.limiters, k)
		}
	}
	v.pruned = now
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// clip keeps strings from hostile input short in rejections and logs.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// openStored verifies an envelope kept in a stream: size, form, signature
// and, when member is set, membership. Expiry and nonces do not apply — a
// stored message is a durable record, replayed on every restart — and the
// stream's per-subject permissions keep anyone but the sender from adding
// one (the caller checks the subject names the sender).
func (v *verifier) openStored(subject string, data []byte, member bool) (Envelope, error) {
	var e Envelope
	rej := func(r Reason, detail string, a ...any) (Envelope, error) {
		return Envelope{}, &RejectError{Rejection{Time: v.now(), Reason: r, Detail: fmt.Sprintf(detail, a...), Subject: subject,
			From: clip(e.From), FromName: clip(e.FromName), Schema: clip(e.Schema), Size: len(data)}}
	}
	if len(data) > v.limits.MaxMessageBytes {
		return rej(ReasonOversize, "%d bytes, the limit is %d", len(data), v.limits.MaxMessageBytes)
	}
	if err := decodeStrict(data, &e); err != nil {
		return rej(ReasonMalformed, "%v", err)
	}
	if e.Schema == "" || e.Version < 1 || e.Nonce == "" {
		return rej(ReasonMalformed, "schema, v >= 1 and nonce are required")
	}
	if len(e.Sig) == 0 {
		return rej(ReasonUnsigned, "no signature")
	}
	if err := identity.Verify(e.From, e.canonical(), e.Sig); err != nil {
		return rej(ReasonBadSignature, "signature does not verify against from %s: %v", clip(e.From), err)
	}
	if member && !v.member(e.From, e.FromName) {
		return rej(ReasonForeign, "%s (%q) is not a member of this fleet", e.From, e.FromName)
	}
	return e, nil
}
