package memory

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/oklog/ulid/v2"

	"github.com/depai/depai/memory/internal/kv"
)

// encodeRecord encodes a Record without the fields kept elsewhere (Seq in the key,
// the vector in binary) or computed on read (ValidTo).
func encodeRecord(r *Record) ([]byte, error) {
	c := *r
	c.Embedding = nil
	c.ValidTo = time.Time{}
	c.Seq = 0
	meta, err := marshalRecord(make([]byte, 0, 256+len(c.Text)+len(c.Data)), &c)
	if err != nil {
		return nil, err
	}
	if r.Embedding == nil {
		return kv.AppendValue(nil, meta, "", nil), nil
	}
	return kv.AppendValue(make([]byte, 0, len(meta)+len(r.Embedding.Model)+4*len(r.Embedding.Vector)+16), meta, r.Embedding.Model, r.Embedding.Vector), nil
}

func decodeRecord(seq uint64, v []byte) (Record, error) {
	meta, model, vec, err := kv.DecodeValue(v)
	if err != nil {
		return Record{}, err
	}
	r, ok := parseRecordJSON(meta)
	if !ok {
		r = Record{}
		if err := json.Unmarshal(meta, &r); err != nil {
			return Record{}, fmt.Errorf("record %d: %w", seq, err)
		}
	}
	r.Seq = seq
	if model != "" || vec != nil {
		r.Embedding = &Embedding{Model: model, Vector: vec}
	}
	return r, nil
}

// newID makes the ULID of the record with Seq seq: the millisecond time,
// then seq (8 bytes big-endian), then 2 random bytes. So IDs sort by
// Recorded and Seq alike, and Get finds a record from its ID without an ID
// index. Imported records keep IDs made elsewhere; they get an index entry.
func newID(now time.Time, seq uint64, rnd uint16) ulid.ULID {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(now)) // fails only after the year 10889
	binary.BigEndian.PutUint64(id[6:14], seq)
	binary.BigEndian.PutUint16(id[14:16], rnd)
	return id
}

// lookupID finds a record by ID: first at the Seq its ID carries, then in
// the index of imported IDs. It returns badger.ErrKeyNotFound if neither has it.
func lookupID(txn *badger.Txn, id ulid.ULID) (Record, error) {
	rec, err := readRecord(txn, binary.BigEndian.Uint64(id[6:14]))
	if err == nil && rec.ID == id.String() {
		return rec, nil
	}
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return Record{}, err
	}
	item, err := txn.Get(kv.IDKey(id))
	if err != nil {
		return Record{}, err
	}
	var seq uint64
	if err := item.Value(func(v []byte) error {
		var err error
		seq, err = kv.Seq(v)
		return err
	}); err != nil {
		return Record{}, err
	}
	return readRecord(txn, seq)
}

func readRecord(txn *badger.Txn, seq uint64) (Record, error) {
	item, err := txn.Get(kv.RecordKey(seq))
	if err != nil {
		return Record{}, err
	}
	var rec Record
	err = item.Value(func(v []byte) error {
		var err error
		rec, err = decodeRecord(seq, v)
		return err
	})
	return rec, err
}
