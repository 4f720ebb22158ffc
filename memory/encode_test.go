package memory

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzAppendRecordJSON: whatever record it is given, the fast encoder
// either declines or writes exactly what json.Marshal writes — stored
// records and the fingerprints of idempotency keys kept across an upgrade
// depend on it.
func FuzzAppendRecordJSON(f *testing.F) {
	f.Add("01J0000000000000000000000", uint64(7), "fleet/site-a", "observation", "operator", int64(1700000000123456789), "pallet 17 at rack B2", []byte(`{"n":1,"s":"a b"}`), "site:a", "", int64(0))
	f.Add("x", uint64(0), "a", "fact", "", int64(0), "", []byte(`{"a": 1}`), "", "k", int64(1800000000000000000))
	f.Add("x", uint64(1), "a", "audit", "depai", int64(-62135596800000000), "<b>&</b>", []byte(`"\u2028 é"`), "t\"q", "k\\", int64(5))
	f.Add("x", uint64(1), "a", "note", "ü", int64(253402300800000000), "tab\there", []byte("[1,\n2]"), "", "", int64(0))
	f.Add("x", uint64(1), "a", "note", "", int64(1), "", []byte(`{"s":"\" <x>"}`), "", "", int64(0))
	f.Fuzz(func(t *testing.T, id string, seq uint64, ns, kind, author string, at int64, text string, data []byte, tag, key string, exp int64) {
		if len(data) > 0 && !json.Valid(data) {
			return // checkRecord refuses it before anything encodes it
		}
		r := Record{ID: id, Seq: seq, Namespace: ns, Kind: Kind(kind), Author: author, Time: time.Unix(0, at).UTC(), Recorded: time.Unix(0, at/3).UTC(), Text: text, Data: data, Key: key}
		if tag != "" {
			r.Tags = []string{tag, "b"}
		}
		if exp != 0 {
			r.ExpiresAt = time.Unix(exp, 0).UTC()
		}
		want, werr := json.Marshal(&r)
		got, ok := appendRecordJSON([]byte("prefix"), &r)
		if ok && (werr != nil || !bytes.Equal(got, append([]byte("prefix"), want...))) {
			t.Fatalf("appendRecordJSON = %s\njson.Marshal   = %s (%v)", got, want, werr)
		}
		m, err := marshalRecord(nil, &r)
		if (err != nil) != (werr != nil) || !bytes.Equal(m, want) {
			t.Fatalf("marshalRecord = %s, %v; json.Marshal = %s, %v", m, err, want, werr)
		}
	})
}

// The fast path covers what the store writes for a put: a UTC record with
// compact Data, its strings escaped as encoding/json escapes them (a turn
// record's text has a newline).
func TestAppendRecordJSONFastPath(t *testing.T) {
	now := time.Date(2026, 12, 1, 23, 0, 0, 123456789, time.UTC)
	r := Record{ID: "01J0000000000000000000000", Seq: 3, Namespace: "fleet/site-a", Kind: KindObservation, Author: "operator", Time: now, Recorded: now, Text: "pallet 17\nat <B2> & \"é\" \u2028\x01\xff", Data: json.RawMessage(`{"n":"a b","m":[1,2]}`), Tags: []string{"site:a"}}
	got, ok := appendRecordJSON(nil, &r)
	want, _ := json.Marshal(&r)
	if !ok || !bytes.Equal(got, want) {
		t.Fatalf("appendRecordJSON = %s, %v; want %s", got, ok, want)
	}
	for name, r := range map[string]Record{
		"local time":  {Time: now.In(time.FixedZone("x", 3600))},
		"white space": {Data: json.RawMessage(`{"a": 1}`)},
		"html data":   {Data: json.RawMessage(`"a<b"`)},
		"embedding":   {Embedding: &Embedding{Model: "m", Vector: []float32{1}}},
	} {
		if _, ok := appendRecordJSON(nil, &r); ok {
			t.Errorf("%s: fast path taken; it must leave this to encoding/json", name)
		}
	}
}

// A fingerprint is what json.Encoder wrote before the fast encoder, so a
// key stored by an older depai still matches its retry.
func TestFingerprintUnchanged(t *testing.T) {
	recs := []Record{
		{Namespace: "fleet", Kind: KindObservation, Author: "op", Text: "x", Data: json.RawMessage(`{"a":1}`), Tags: []string{"t"}},
		{Namespace: "fleet", Kind: KindFact, Key: "k", Text: "<html> é", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("y", -7200))},
	}
	got, err := fingerprint(recs)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(buf.Bytes())
	want := sum[:]
	if !bytes.Equal(got, want) {
		t.Fatalf("fingerprint changed: %x, want %x", got, want)
	}
}

// Write.Check refuses what the commit could not encode, so that one bad
// write never fails the audit records committed beside it — with an
// idempotency key or without.
func TestWriteCheckRefusesUnencodableTimes(t *testing.T) {
	for name, tm := range map[string]time.Time{
		"year 10000":  time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		"year -1":     time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		"offset 25 h": time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("h", 25*3600)),
	} {
		for _, key := range []string{"", "k1"} {
			w := Write{Key: key, Recs: []Record{{Namespace: "fleet", Kind: KindObservation, Time: tm}}}
			if err := w.Check(); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s, key %q: Check = %v, want ErrInvalid", name, key, err)
			}
			if _, err := json.Marshal(w.Recs[0]); err == nil {
				t.Errorf("%s: json.Marshal accepts it; the case tests nothing", name)
			}
		}
	}
}
