package memory

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// MaxNamespaceLen bounds a namespace; namespaces are part of every index key.
const MaxNamespaceLen = 256

// CheckNamespace reports whether ns is a valid namespace: "/"-separated
// segments of letters, digits, '-', '_', '.' and ':', none empty, "." or "..".
// The error wraps ErrInvalid and names the namespace and what is wrong.
func CheckNamespace(ns string) error {
	if ns == "" {
		return fmt.Errorf("%w: namespace is empty, want e.g. \"agent/robot-1\"", ErrInvalid)
	}
	if len(ns) > MaxNamespaceLen {
		return fmt.Errorf("%w: namespace %.40q… is %d bytes, want at most %d", ErrInvalid, ns, len(ns), MaxNamespaceLen)
	}
	for seg := range strings.SplitSeq(ns, "/") {
		if seg == "" {
			return fmt.Errorf("%w: namespace %q has an empty segment (leading, trailing or double \"/\")", ErrInvalid, ns)
		}
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: namespace %q has a %q segment", ErrInvalid, ns, seg)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
				return fmt.Errorf("%w: namespace %q has character %q, want letters, digits, '-', '_', '.', ':' and '/'", ErrInvalid, ns, c)
			}
		}
	}
	return nil
}

// Within reports whether namespace ns is grant or below it: "fleet/site-a"
// is within "fleet", "agent/robot-10" is not within "agent/robot-1".
func Within(ns, grant string) bool {
	return ns == grant || len(ns) > len(grant) && ns[len(grant)] == '/' && strings.HasPrefix(ns, grant)
}

// checkLabel validates a string that becomes part of an index key.
func checkLabel(field, v string) error {
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s %q contains a NUL byte", ErrInvalid, field, v)
	}
	if len(v) > 1024 {
		return fmt.Errorf("%w: %s %.40q… is %d bytes, want at most 1024", ErrInvalid, field, v, len(v))
	}
	return nil
}

// checkRecord validates what a caller supplies on Put.
func checkRecord(r *Record, now time.Time) error {
	if err := CheckNamespace(r.Namespace); err != nil {
		return err
	}
	if r.Kind == "" {
		return fmt.Errorf("%w: kind is empty, want e.g. %q", ErrInvalid, KindObservation)
	}
	if err := checkLabel("kind", string(r.Kind)); err != nil {
		return err
	}
	if err := checkLabel("author", r.Author); err != nil {
		return err
	}
	if err := checkLabel("key", r.Key); err != nil {
		return err
	}
	for i, t := range r.Tags {
		if t == "" {
			return fmt.Errorf("%w: tags[%d] is empty", ErrInvalid, i)
		}
		// The field's name is spelled out only for an error: every turn
		// record has four tags.
		if checkLabel("", t) != nil {
			return checkLabel(fmt.Sprintf("tags[%d]", i), t)
		}
	}
	if r.Kind == KindFact && r.Key == "" {
		return fmt.Errorf("%w: a %q record needs a key (what the fact is about)", ErrInvalid, KindFact)
	}
	if len(r.Data) > 0 && !json.Valid(r.Data) {
		return fmt.Errorf("%w: data is not valid JSON: %.60q", ErrInvalid, r.Data)
	}
	// Records are stored as JSON, which has no year before 0 or after 9999:
	// refused here, not at the commit, which would fail every write in it.
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{"time", r.Time}, {"expires_at", r.ExpiresAt}} {
		if y := f.t.Year(); y < 0 || y > 9999 {
			return fmt.Errorf("%w: %s %s is outside years 0 to 9999", ErrInvalid, f.name, f.t.Format(time.RFC3339))
		}
		if _, off := f.t.Zone(); off <= -24*3600 || off >= 24*3600 {
			return fmt.Errorf("%w: %s %s has a zone offset of %ds, want less than 24 h", ErrInvalid, f.name, f.t.Format(time.RFC3339), off)
		}
	}
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now) {
		return fmt.Errorf("%w: expires_at %s is not in the future", ErrInvalid, r.ExpiresAt.Format(time.RFC3339Nano))
	}
	if e := r.Embedding; e != nil {
		if len(e.Vector) == 0 {
			return fmt.Errorf("%w: embedding has no vector (model %q)", ErrInvalid, e.Model)
		}
		if e.Model == "" {
			return fmt.Errorf("%w: embedding of %d dims has no model", ErrInvalid, len(e.Vector))
		}
		for i, f := range e.Vector {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return fmt.Errorf("%w: embedding vector[%d] is %v, want a finite number", ErrInvalid, i, f)
			}
		}
	}
	return nil
}

// checkQuery validates a Query before it runs.
func checkQuery(q Query) error {
	if q.Namespace != "" {
		if err := CheckNamespace(q.Namespace); err != nil {
			return fmt.Errorf("query: %w", err)
		}
	}
	if q.Limit < 0 {
		return fmt.Errorf("query: %w: limit %d is negative, want 0 (no limit) or more", ErrInvalid, q.Limit)
	}
	for i, k := range q.Kinds {
		if k == "" {
			return fmt.Errorf("query: %w: kinds[%d] is empty", ErrInvalid, i)
		}
	}
	return nil
}

// Match reports whether r satisfies every filter of q at time now (expired
// records never match). Limit and Ascending are not filters.
func Match(q Query, r *Record, now time.Time) bool {
	if q.AfterSeq != 0 && r.Seq <= q.AfterSeq {
		return false
	}
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now) {
		return false
	}
	if q.Namespace != "" && !Within(r.Namespace, q.Namespace) {
		return false
	}
	if len(q.Kinds) > 0 && !slices.Contains(q.Kinds, r.Kind) {
		return false
	}
	if q.Author != "" && r.Author != q.Author {
		return false
	}
	if q.Key != "" && r.Key != q.Key {
		return false
	}
	for _, t := range q.Tags {
		if !slices.Contains(r.Tags, t) {
			return false
		}
	}
	if !q.Since.IsZero() && r.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !r.Time.Before(q.Until) {
		return false
	}
	return true
}
