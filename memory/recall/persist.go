package recall

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"

	"github.com/depai/depai/memory"
)

func docKey(prefix []byte, n uint32) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(prefix), n)
}

// load restores the checkpointed state. Called before the index is shared.
func (x *Index) load(ctx context.Context) error {
	var nDocs uint64
	model := ""
	err := x.db.View(func(txn *badger.Txn) error {
		if item, err := txn.Get(keyCursor); err == nil {
			if err := item.Value(func(b []byte) error {
				if len(b) != 16 {
					return fmt.Errorf("cursor record is %d bytes, want 16", len(b))
				}
				x.cursor, nDocs = binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
				return nil
			}); err != nil {
				return err
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		switch item, err := txn.Get(keyFormat); {
		case err == nil:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if string(v) != formatVersion {
				return fmt.Errorf("index format %q, this build reads %q", v, formatVersion)
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		x.loadTotal.Store(int64(nDocs))
		if item, err := txn.Get(keyModel); err == nil {
			b, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			model = string(b)
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefDoc})
		defer it.Close()
		for it.Rewind(); it.Valid() && uint64(len(x.docs)) < nDocs; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := binary.BigEndian.Uint32(it.Item().Key()[len(prefDoc):])
			if int(n) != len(x.docs) {
				return fmt.Errorf("document table: found document %d, want %d", n, len(x.docs))
			}
			if err := it.Item().Value(func(b []byte) error { return x.decodeDoc(n, b) }); err != nil {
				return fmt.Errorf("document %d: %w", n, err)
			}
			x.loadDone.Add(1)
		}
		if uint64(len(x.docs)) != nDocs {
			return fmt.Errorf("document table holds %d documents, cursor says %d", len(x.docs), nDocs)
		}
		pit := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: prefPost})
		defer pit.Close()
		for pit.Rewind(); pit.Valid(); pit.Next() {
			k := pit.Item().Key()[len(prefPost):]
			if len(k) < 5 || k[len(k)-5] != 0 {
				return fmt.Errorf("postings key %q is malformed", k)
			}
			term, block := string(k[:len(k)-5]), binary.BigEndian.Uint32(k[len(k)-4:])
			if err := pit.Item().Value(func(b []byte) error { return x.text.LoadBlock(term, block, b) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	if err := x.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, []byte(formatVersion)) }); err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	if err := x.dropBadgerGraphs(); err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	x.saved = len(x.docs)
	if x.emb == nil {
		return nil
	}
	if model != x.emb.Model() {
		// New model: old vectors cannot be compared with new ones. Drop them and
		// re-embed everything in the background; BM25 serves meanwhile.
		if model != "" {
			x.log.Info("recall: embedding model changed; re-embedding", "from", model, "to", x.emb.Model(), "records", len(x.docs))
		}
		if err := x.db.DropPrefix(prefVec); err != nil {
			return fmt.Errorf("drop vectors of %s: %w", model, err)
		}
		if err := removeFiles(x.cfg.Dir, graphFiles); err != nil {
			return fmt.Errorf("drop graphs of %s: %w", model, err)
		}
		if err := x.db.Update(func(txn *badger.Txn) error { return txn.Set(keyModel, []byte(x.emb.Model())) }); err != nil {
			return err
		}
	}
	return x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: prefVec})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n := binary.BigEndian.Uint32(it.Item().Key()[len(prefVec):])
			if int(n) >= len(x.docs) {
				// Written after the last checkpoint; attachVector picks it up
				// when the record is read again.
				x.vecsBelow = n + 1
				continue
			}
			err := it.Item().Value(func(b []byte) error {
				id, m, v, err := decodeVector(b)
				if err != nil {
					return fmt.Errorf("vector of document %d: %w", n, err)
				}
				if id == x.docID(n) && m == x.emb.Model() {
					if err := x.addVector(n, v); err != nil {
						x.log.Warn("recall: stored vector rejected", "id", id, "err", err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		x.flushStaged()
		// Snapshots and logs a crash left under temporary names (graphCommit).
		if err := removeFiles(x.cfg.Dir, []string{".graph-*"}); err != nil {
			return err
		}
		for _, p := range x.parts {
			x.loadGraph(p)
		}
		// Every document with text and no vector is queued, audit records
		// aside; the text is read from the Source when its turn comes.
		audit, hasAudit := x.strs.lookup(string(memory.KindAudit))
		for n := range x.docs {
			if !x.docs[n].vec && x.text.HasText(uint32(n)) && !(hasAudit && x.docs[n].kind == audit) {
				x.pending = append(x.pending, pendingEmbed{doc: uint32(n)})
				x.enqueued++
			}
		}
		return nil
	})
}

// checkpoint writes the documents and postings blocks added since the last
// one, then the cursor. It gathers them under x.mu and writes them without
// it, so searches go on meanwhile. Called by one goroutine at a time:
// ingest, then Close.
func (x *Index) checkpoint() error {
	x.mu.Lock()
	from, to, cursor := x.saved, len(x.docs), x.cursor
	if from == to || (to-from < min(lazyDocs, x.cfg.CheckpointEvery) && !x.dbOpen()) {
		x.mu.Unlock()
		return nil
	}
	var kvs []kv
	for n := from; n < to; n++ {
		kvs = append(kvs, kv{docKey(prefDoc, uint32(n)), x.encodeDoc(uint32(n))})
	}
	x.text.Flush(func(term string, block uint32, data []byte) error {
		k := append(append(bytes.Clone(prefPost), term...), 0)
		kvs = append(kvs, kv{binary.BigEndian.AppendUint32(k, block), data})
		return nil
	})
	x.mu.Unlock()
	// The cursor goes last, in its own batch: if the process dies before it
	// lands, the documents and blocks past the old cursor are ignored on load.
	err := x.roomToWrite()
	if err == nil {
		err = x.write(kvs)
	}
	if err == nil {
		cur := binary.BigEndian.AppendUint64(nil, cursor)
		cur = binary.BigEndian.AppendUint64(cur, uint64(to))
		var db *badger.DB
		if db, err = x.openDB(); err == nil {
			err = db.Update(func(txn *badger.Txn) error { return txn.Set(keyCursor, cur) })
		}
	}
	if err != nil {
		// The next checkpoint writes these documents again, and the postings
		// blocks that Flush has stopped tracking with them.
		x.mu.Lock()
		x.text.Redirty(uint32(from))
		x.mu.Unlock()
		return fmt.Errorf("checkpoint: %w", err)
	}
	x.mu.Lock()
	x.saved = to
	x.mu.Unlock()
	return nil
}

// kv is one key and value to store.
type kv struct{ k, v []byte }

// write stores kvs in one write batch.
func (x *Index) write(kvs []kv) error {
	if len(kvs) == 0 {
		return nil
	}
	if err := x.roomToWrite(); err != nil {
		return err
	}
	db, err := x.openDB()
	if err != nil {
		return err
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range kvs {
		if err := wb.Set(e.k, e.v); err != nil {
			return err
		}
	}
	return wb.Flush()
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func (x *Index) encodeDoc(n uint32) []byte {
	d := &x.docs[n]
	b := binary.BigEndian.AppendUint64(nil, d.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(d.time))
	b = binary.BigEndian.AppendUint64(b, uint64(d.expires))
	b = binary.AppendUvarint(b, uint64(x.text.DocLen(n)))
	b = appendString(b, x.nss.strs[d.ns])
	for _, s := range []uint32{d.kind, d.author, d.key} {
		b = appendString(b, x.strs.strs[s])
	}
	b = appendString(b, x.docID(n))
	b = binary.AppendUvarint(b, uint64(d.ntags))
	for _, h := range x.tagsOf(d) {
		b = binary.BigEndian.AppendUint32(b, h)
	}
	// Last, so that a build before it, which stops after the tags, still
	// reads the document; and one read from such a build has no key.
	return binary.BigEndian.AppendUint32(b, d.text)
}

var errShort = errors.New("truncated")

func readString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, errShort
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

func (x *Index) decodeDoc(n uint32, b []byte) error {
	if len(b) < 24 {
		return errShort
	}
	d := doc{
		seq:     binary.BigEndian.Uint64(b),
		time:    int64(binary.BigEndian.Uint64(b[8:])),
		expires: int64(binary.BigEndian.Uint64(b[16:])),
	}
	b = b[24:]
	dl, k := binary.Uvarint(b)
	if k <= 0 || dl > math.MaxUint32 {
		return errShort
	}
	b = b[k:]
	var strs [5]string
	var err error
	for i := range strs {
		if strs[i], b, err = readString(b); err != nil {
			return err
		}
	}
	d.ns, d.kind, d.author, d.key = x.nss.id(strs[0]), x.strs.id(strs[1]), x.strs.id(strs[2]), x.strs.id(strs[3])
	x.setID(n, &d, strs[4])
	nt, k := binary.Uvarint(b)
	if k <= 0 || nt > math.MaxUint16 || uint64(len(b)-k) < 4*nt {
		return errShort
	}
	b = b[k:]
	d.tag0, d.ntags = uint32(len(x.tagHashes)), uint16(nt)
	for i := range int(nt) {
		x.tagHashes = grown(x.tagHashes, binary.BigEndian.Uint32(b[4*i:]))
	}
	if b = b[4*nt:]; len(b) >= 4 {
		d.text = binary.BigEndian.Uint32(b)
	}
	x.docs = grown(x.docs, d)
	x.supersede(n)
	return x.text.SetDocLen(n, uint32(dl))
}

// encodeVector lays out id, model, dims and the vector as little-endian float32.
func encodeVector(id, model string, v []float32) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(id)+len(model)+4+4*len(v))
	b = appendString(b, id)
	b = appendString(b, model)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func decodeVector(b []byte) (id, model string, v []float32, err error) {
	if id, b, err = readString(b); err != nil {
		return
	}
	if model, b, err = readString(b); err != nil {
		return
	}
	if len(b) < 4 {
		return "", "", nil, errShort
	}
	dims := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if uint64(len(b)) != 4*uint64(dims) {
		return "", "", nil, fmt.Errorf("vector holds %d bytes, want %d for %d dimensions", len(b), 4*dims, dims)
	}
	v = make([]float32, dims)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return id, model, v, nil
}

// dropBadgerGraphs removes graphs that earlier versions saved in the
// index's badger (the prefGraph keys); they now live in files of their own
// (graphfile.go), and the next Close saves them there.
func (x *Index) dropBadgerGraphs() error {
	found := false
	err := x.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefGraphMeta})
		defer it.Close()
		it.Rewind()
		found = it.Valid()
		return nil
	})
	if err != nil || !found {
		return err
	}
	return x.db.DropPrefix(prefGraph, prefGraphMeta)
}
