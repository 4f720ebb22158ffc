package memory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/depai/depai/memory/internal/kv"
)

// IdempotencyTTL is how long PutOnce remembers a key.
const IdempotencyTTL = 24 * time.Hour

// maxIdemKey bounds an idempotency key (an HTTP Idempotency-Key header is
// at most a few dozen bytes).
const maxIdemKey = 255

// PutOnce is Put with an idempotency key. The first PutOnce with key stores
// recs (atomically, like Put) and remembers which records it stored for
// IdempotencyTTL; a later PutOnce with the same key — a client's retry
// after a timeout, a lost reply or a crash — stores nothing and returns the
// records the first one stored, with first false. The key commits in the
// same transaction as the records, so it is exactly as durable as they
// are, across restarts too. Concurrent PutOnce calls with one key store
// once. A PutOnce with a key that a put with other records used (any
// field the caller sets differs) stores nothing and fails with
// ErrKeyReused: the key names one request, and a different request under it
// is the client's mistake, not a retry.
func (db *DB) PutOnce(ctx context.Context, key string, recs ...Record) (stored []Record, first bool, err error) {
	r, err := newIdemRequest(key, recs, time.Now())
	if err != nil {
		return nil, false, fmt.Errorf("memory: put: %w", err)
	}
	out, err := db.submit(ctx, r)
	if err != nil {
		return nil, false, err
	}
	return out, !r.dup, nil
}

// ErrKeyReused is the error of a put whose idempotency key an earlier put
// with different records used.
var ErrKeyReused = errors.New("memory: idempotency key reused with different records")

// newIdemRequest checks a put with an idempotency key and fingerprints its
// records as the caller gave them.
func newIdemRequest(key string, recs []Record, now time.Time) (*request, error) {
	if err := checkIdemKey(key); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrInvalid)
	}
	for i := range recs {
		if err := checkRecord(&recs[i], now); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
	}
	r := &request{op: opPut, recs: slices.Clone(recs), idem: key}
	var err error
	if r.print, err = fingerprint(recs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return r, nil
}

func checkIdemKey(key string) error {
	if key == "" || len(key) > maxIdemKey {
		return fmt.Errorf("%w: idempotency key is %d bytes, want 1 to %d", ErrInvalid, len(key), maxIdemKey)
	}
	return nil
}

// fingerprint is the hash of what the caller sets in recs: everything but
// the fields the store assigns.
func fingerprint(recs []Record) ([]byte, error) {
	// As json.Encoder.Encode writes each record: keys stored by earlier
	// versions of depai must match their retries.
	h := sha256.New()
	var b []byte
	for _, rec := range recs {
		rec.ID, rec.Seq, rec.Recorded, rec.ValidTo = "", 0, time.Time{}, time.Time{}
		var err error
		if b, err = marshalRecord(b[:0], &rec); err != nil {
			return nil, err
		}
		h.Write(append(b, '\n'))
	}
	return h.Sum(nil), nil
}

// prepareIdem looks key up in txn (which holds what earlier requests of the
// group staged). If a put with key committed, it loads its records into r
// and marks r a duplicate.
func (db *DB) prepareIdem(txn *badger.Txn, r *request) (bool, error) {
	item, err := txn.Get(kv.IdemKey(r.idem))
	if err == badger.ErrKeyNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var first uint64
	var n uint32
	same := true
	if err := item.Value(func(v []byte) error {
		// 12 bytes: a key stored before fingerprints, not compared.
		if len(v) != 12 && len(v) != 12+sha256.Size {
			return fmt.Errorf("idempotency key %q: value is %d bytes, want 12 or %d", r.idem, len(v), 12+sha256.Size)
		}
		first, n = binary.BigEndian.Uint64(v), binary.BigEndian.Uint32(v[8:])
		same = len(v) == 12 || bytes.Equal(v[12:], r.print)
		return nil
	}); err != nil {
		return false, err
	}
	if !same {
		return false, fmt.Errorf("%w: key %q stored %d record(s) from seq %d, and these records differ from them (a new request needs a new key)", ErrKeyReused, r.idem, n, first)
	}
	recs := make([]Record, 0, n)
	for seq := first; seq < first+uint64(n); seq++ {
		rec, err := readRecord(txn, seq)
		if err != nil {
			return false, fmt.Errorf("idempotency key %q: record %d: %w", r.idem, seq, err)
		}
		recs = append(recs, rec)
	}
	r.recs, r.dup = recs, true
	return true, nil
}

// idemEntry records that r's records were stored under its key.
func idemEntry(r *request, now time.Time) *badger.Entry {
	v := binary.BigEndian.AppendUint64(nil, r.recs[0].Seq)
	v = binary.BigEndian.AppendUint32(v, uint32(len(r.recs)))
	v = append(v, r.print...)
	e := badger.NewEntry(kv.IdemKey(r.idem), v)
	e.ExpiresAt = uint64(now.Add(IdempotencyTTL).Unix())
	return e
}

// restoreRaw writes salvaged idempotency keys (Repair).
func (db *DB) restoreRaw(pairs []kvPair) error {
	if len(pairs) == 0 {
		return nil
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, p := range pairs {
		e := badger.NewEntry(p.k, p.v)
		e.ExpiresAt = p.expires
		if err := wb.SetEntry(e); err != nil {
			return err
		}
	}
	return wb.Flush()
}
