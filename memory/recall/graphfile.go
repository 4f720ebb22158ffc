package recall

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/depai/depai/internal/atomicfile"
	"github.com/depai/depai/memory/recall/internal/hnsw"
)

// Each namespace's HNSW graph lives beside the index's badger in two files
// of its own (badger would rewrite a 1M-node graph through compaction on
// every save): a snapshot, graph-<hash>.snap, replaced atomically, and a
// log of the insertions since, graph-<hash>.log, appended to as the graph
// grows and flushed at every checkpoint. Both carry record numbers, not
// partition positions, and are checksummed (hnsw.Save). After a crash the
// load restores the snapshot and replays the log, drops what refers to
// records past the last checkpoint, and links only the vectors the graph
// lacks; a snapshot that does not decode means a rebuild, never an error.

// graphSnapshotEvery: a snapshot is written at a checkpoint once the log
// holds this fraction of the graph's nodes (and at Close), so a load
// replays at most that many insertions' back-links.
const graphSnapshotEvery = 4 // a quarter

// resumeInline: a restored graph missing at most this many vectors links
// them during the load; more are linked in the background, in parallel,
// while exact scan answers.
const resumeInline = 2000

func graphPaths(dir, ns string) (snap, log string) {
	h := sha256.Sum256([]byte(ns))
	base := filepath.Join(dir, "graph-"+hex.EncodeToString(h[:12]))
	return base + ".snap", base + ".log"
}

// graphLog is the open log of one graph's insertions. The graph writes to
// it from its inserting goroutines; checkpoints flush it.
type graphLog struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	records int // since the snapshot
}

// openGraphLog creates or empties the log at path.
func openGraphLog(path string) (*graphLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("graph log: %w", err)
	}
	return &graphLog{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (l *graphLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records++
	return l.w.Write(p)
}

func (l *graphLog) flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

func (l *graphLog) close() error {
	err := l.flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// startGraphLog removes p's snapshot and opens an empty log for a graph
// built from scratch; nil when the files cannot be written (the graph is
// then built without, and rebuilt after a crash). Called by build.
func (x *Index) startGraphLog(p *partition) *graphLog {
	snap, logPath := graphPaths(x.cfg.Dir, p.ns)
	if err := os.Remove(snap); err != nil && !errors.Is(err, os.ErrNotExist) {
		x.setErr(fmt.Errorf("recall: graph of %q: %w", p.ns, err))
		return nil
	}
	l, err := openGraphLog(logPath)
	if err != nil {
		x.setErr(fmt.Errorf("recall: graph of %q: %w", p.ns, err))
		return nil
	}
	return l
}

// saveGraph writes p's snapshot and starts its log afresh (writeGraph),
// then makes both durable (commit). Called with p.mu held, or during load.
func (x *Index) saveGraph(p *partition) error {
	c, err := x.writeGraph(p)
	if err == nil {
		err = c.commit()
	}
	return err
}

// graphCommit is a snapshot written but not yet in place.
type graphCommit struct {
	p                 *partition
	dir               string
	snap, log         *os.File // the new snapshot and log, under temporary names
	snapPath, logPath string
	old               *graphLog // the log the snapshot replaces
}

// writeGraph writes p's snapshot, with record numbers for positions, to a
// temporary file, and moves the graph's log to a new temporary file, which
// takes the insertions from now on. Both are put in place by commit, which
// needs no lock: so a snapshot holds the partition's lock only as long as
// it takes to encode, not to sync. Called with p.mu held, or its read
// lock by the goroutine that checkpoints (see partition.graphStored).
func (x *Index) writeGraph(p *partition) (*graphCommit, error) {
	if err := x.roomToWrite(); err != nil {
		return nil, err
	}
	c := &graphCommit{p: p, dir: x.cfg.Dir, old: p.glog}
	c.snapPath, c.logPath = graphPaths(x.cfg.Dir, p.ns)
	var err error
	if c.snap, err = os.CreateTemp(x.cfg.Dir, ".graph-*.snap"); err != nil {
		return nil, fmt.Errorf("save graph of %q: %w", p.ns, err)
	}
	err = p.graph.Save(c.snap, func(pos uint32) uint32 { return p.docs[pos] })
	if err == nil {
		c.log, err = os.CreateTemp(x.cfg.Dir, ".graph-*.log")
	}
	if err != nil {
		c.snap.Close()
		os.Remove(c.snap.Name())
		return nil, fmt.Errorf("save graph of %q: %w", p.ns, err)
	}
	p.glog = &graphLog{f: c.log, w: bufio.NewWriterSize(c.log, 256<<10)}
	p.graph.SetLog(p.glog, func(pos uint32) uint32 { return p.docs[pos] })
	p.graphStored = true
	return c, nil
}

// commit syncs the snapshot and renames the new log and it into place, in
// that order, and closes the old log. A crash before the renames leaves the
// old snapshot and log; one between them, the old snapshot and the new log,
// whose records load with their links into the nodes between dropped.
// Either way the insertions not restored are linked again from the store.
// (The other order could pair the new snapshot with the old log, whose
// node numbers are not the snapshot's after a load renumbered the graph.)
func (c *graphCommit) commit() error {
	err := c.snap.Sync()
	if cerr := c.snap.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(c.log.Name(), c.logPath)
	}
	if err == nil {
		err = os.Rename(c.snap.Name(), c.snapPath)
	}
	if err == nil {
		err = atomicfile.SyncDir(c.dir)
	}
	if c.old != nil {
		if cerr := c.old.close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(c.snap.Name())
		c.p.mu.RLock()
		c.p.graphStored = false // the next checkpoint tries again
		c.p.mu.RUnlock()
		return fmt.Errorf("save graph of %q: %w", c.p.ns, err)
	}
	return nil
}

// syncGraphs flushes the graphs' logs and writes the snapshots that are
// due (final: every graph that changed, and the logs are closed). Called
// after a checkpoint, by the goroutine that checkpoints.
func (x *Index) syncGraphs(final bool) error {
	if !x.dbOpen() {
		// Nothing is saved yet (a lazy index): the graphs' documents are
		// not on disk, and the next open rebuilds from the store anyway.
		// A log a build opened before that is of no use: Close drops it.
		if final {
			x.dropGraphLogs()
		}
		return nil
	}
	x.mu.RLock()
	parts := make([]*partition, 0, len(x.parts))
	for _, p := range x.parts {
		parts = append(parts, p)
	}
	x.mu.RUnlock()
	var errs []error
	for _, p := range parts {
		p.mu.RLock()
		g, l := p.graph, p.glog
		var logErr error
		if l != nil {
			logErr = l.flush()
		}
		if g != nil && logErr == nil {
			logErr = g.LogErr()
		}
		if logErr != nil {
			// The log lacks insertions: the snapshot below replaces it.
			x.log.Warn("recall: graph log", "namespace", p.ns, "err", logErr)
		}
		// Under the read lock: searches go on, Adds wait for the snapshot
		// to be encoded, not synced.
		var c *graphCommit
		if g != nil && !p.graphStored && (final || l == nil || logErr != nil || l.records*graphSnapshotEvery >= g.Len()) {
			var err error
			c, err = x.writeGraph(p)
			errs = append(errs, err)
		}
		p.mu.RUnlock()
		if c != nil {
			errs = append(errs, c.commit())
		}
		if final {
			p.mu.Lock()
			if p.glog != nil {
				errs = append(errs, p.glog.close())
				p.glog = nil
			}
			p.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// dropGraphLogs closes and removes the graphs' logs. Called by Close, for
// an index that saved nothing.
func (x *Index) dropGraphLogs() {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, p := range x.parts {
		p.mu.Lock()
		if l := p.glog; l != nil {
			if err := l.close(); err != nil {
				x.log.Warn("recall: graph log", "namespace", p.ns, "err", err)
			}
			os.Remove(l.f.Name())
			p.glog = nil
		}
		p.mu.Unlock()
	}
}

// loadGraph restores p's graph from its snapshot and log, if it has them:
// nodes of records past the checkpoint, or whose vectors are gone, are
// dropped; the vectors the graph lacks are linked now if few, else in the
// background (build). A restored graph that changed is saved again at
// once, so its log starts from its own node numbers. Called during load.
func (x *Index) loadGraph(p *partition) {
	snapPath, logPath := graphPaths(x.cfg.Dir, p.ns)
	snap, serr := os.Open(snapPath)
	logf, lerr := os.Open(logPath)
	if serr != nil && lerr != nil {
		return
	}
	var sr, lr io.Reader
	if serr == nil {
		defer snap.Close()
		sr = snap
	}
	if lerr == nil {
		defer logf.Close()
		lr = logf
	}
	nsID := x.nss.ids[p.ns]
	covered := make([]bool, len(p.docs))
	g, st, err := hnsw.Load(x.hcfg, p.vecAt, sr, lr, func(d uint32) (uint32, bool) {
		if int(d) >= len(x.docs) || !x.docs[d].vec || x.docs[d].ns != nsID || covered[x.docs[d].pos] {
			return 0, false
		}
		covered[x.docs[d].pos] = true
		return x.docs[d].pos, true
	})
	if err != nil {
		x.log.Warn("recall: saved graph unusable; rebuilding", "namespace", p.ns, "err", err)
		return
	}
	if g.Len() == 0 {
		return
	}
	var missing []uint32
	for pos, ok := range covered {
		if !ok {
			missing = append(missing, uint32(pos))
		}
	}
	x.log.Info("recall: graph restored", "namespace", p.ns, "snapshot", st.Snapshot, "logged", st.Logged, "dropped", st.Dropped, "damaged_log", st.LogDamaged, "missing", len(missing))
	inline := len(missing) <= resumeInline
	if inline {
		for _, pos := range missing {
			g.Add(pos)
		}
	}
	p.graph = g
	if st.Logged > 0 || st.Dropped > 0 || st.LogDamaged || len(missing) > 0 {
		// The files hold the old node numbers: the log must start from a
		// snapshot of this graph.
		err = x.saveGraph(p)
	} else if p.glog, err = openGraphLog(logPath); err == nil {
		g.SetLog(p.glog, func(pos uint32) uint32 { return p.docs[pos] })
		p.graphStored = true
	}
	if err != nil {
		x.setErr(fmt.Errorf("recall: graph of %q: %w", p.ns, err))
	}
	if !inline {
		p.graph, p.graphStored = nil, false
		p.resume, p.missing = g, missing
	}
}

// resumeBuild links the vectors a restored graph lacks, in parallel.
func resumeBuild(ctx context.Context, g *hnsw.Graph, vec func(uint32) []float32, missing []uint32) error {
	g.SetVectors(vec)
	return g.Extend(ctx, missing, runtime.GOMAXPROCS(0))
}
