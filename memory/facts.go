package memory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// PutFact stores rec (Kind defaults to KindFact) as the new version of the
// fact rec.Namespace/rec.Key, if the current version's Seq is expectedSeq
// (0: there is none). On a lost race it returns ErrConflict and stores nothing.
func (db *DB) PutFact(ctx context.Context, rec Record, expectedSeq uint64) (Record, error) {
	if rec.Kind == "" {
		rec.Kind = KindFact
	}
	if rec.Kind != KindFact {
		return Record{}, fmt.Errorf("memory: put fact: %w: kind %q, want %q", ErrInvalid, rec.Kind, KindFact)
	}
	if err := checkRecord(&rec, time.Now()); err != nil {
		return Record{}, fmt.Errorf("memory: put fact: %w", err)
	}
	out, err := db.submit(ctx, &request{op: opFact, recs: []Record{rec}, expected: expectedSeq})
	if err != nil {
		return Record{}, err
	}
	return out[0], nil
}

// Fact returns the current version of the fact namespace/key.
func (db *DB) Fact(ctx context.Context, namespace, key string) (Record, error) {
	if err := CheckNamespace(namespace); err != nil {
		return Record{}, fmt.Errorf("memory: fact: %w", err)
	}
	if !db.enter(&db.reads) {
		return Record{}, fmt.Errorf("memory: fact: %w", ErrClosed)
	}
	defer db.reads.Done()
	var rec Record
	err := db.bdb.View(func(txn *badger.Txn) error {
		seq, err := currentFact(txn, namespace, key)
		if err != nil {
			return err
		}
		if seq == 0 {
			return badger.ErrKeyNotFound
		}
		rec, err = readRecord(txn, seq)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) || err == nil && !Match(Query{}, &rec, time.Now()) {
		return Record{}, fmt.Errorf("memory: fact %s key %q: %w", namespace, key, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("memory: fact %s key %q: %w", namespace, key, err)
	}
	return rec, nil
}

// History returns every stored version of the fact namespace/key, oldest
// first, each superseded one with ValidTo set.
func (db *DB) History(ctx context.Context, namespace, key string) ([]Record, error) {
	if err := CheckNamespace(namespace); err != nil {
		return nil, fmt.Errorf("memory: history: %w", err)
	}
	if key == "" {
		return nil, fmt.Errorf("memory: history %s: %w: key is empty", namespace, ErrInvalid)
	}
	var out []Record
	for rec, err := range db.Query(ctx, Query{Namespace: namespace, Key: key, Kinds: []Kind{KindFact}, Ascending: true}) {
		if err != nil {
			return nil, fmt.Errorf("memory: history %s key %q: %w", namespace, key, err)
		}
		// Query covers sub-namespaces; a fact's history is its own namespace.
		if rec.Namespace == namespace {
			out = append(out, rec)
		}
	}
	return out, nil
}
