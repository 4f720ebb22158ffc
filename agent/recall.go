package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/embed"
	"github.com/depai/depai/memory/recall"
)

// Recall budget of a turn's context: how many memories, and how many bytes
// of their text (about a thousand tokens).
const (
	recallHits  = 6
	recallBytes = 4000
	// recallFloor leaves out of a turn's context the memories whose BM25
	// score is under a quarter of the best one's: those that share with
	// the input only a word most memories have.
	recallFloor = 0.25
	// syncWait bounds how long a search waits for the index to catch up
	// with writes just made, so an operator finds what was just stored.
	syncWait = 2 * time.Second
)

// openRecall opens the fleet's one recall index, following the shared store.
func openRecall(ctx context.Context, file *config.File, db recall.Source, dataDir string, secrets func(string) (string, bool), log *slog.Logger) (*recall.Index, error) {
	var emb embed.Embedder
	for _, a := range file.Agents {
		e := a.Memory.Embeddings
		if e.BaseURL == "" {
			continue
		}
		key, _ := secrets(e.APIKeyEnv)
		c, err := embed.New(embed.Config{BaseURL: e.BaseURL, Model: e.Model, APIKey: key, Dims: e.Dims})
		if err != nil {
			return nil, fmt.Errorf("agent %q: memory.embeddings: %w", a.Name, err)
		}
		emb = c
		break
	}
	return recall.Open(ctx, recall.Config{Source: db, Dir: filepath.Join(dataDir, "recall"), Embedder: emb, Logger: log})
}

// search recalls records for text from namespace ("" for every namespace
// the agent may read). The recall index is shared by the fleet, so the
// agent's read grants bound every search.
func (a *Agent) search(ctx context.Context, text, namespace string, kinds []memory.Kind, k int) ([]memory.Record, error) {
	hits, err := a.searchHits(ctx, recall.Query{Text: text, K: k, Filter: memory.Query{Namespace: namespace, Kinds: kinds}})
	if err != nil {
		return nil, err
	}
	out := make([]memory.Record, len(hits))
	for i, h := range hits {
		out[i] = h.Record
	}
	return out, nil
}

// searchHits runs q within the agent's read grants.
func (a *Agent) searchHits(ctx context.Context, q recall.Query) ([]recall.Hit, error) {
	if ns := q.Filter.Namespace; ns != "" && !memory.Granted(a.cfg.Memory.Read, ns) {
		return nil, fmt.Errorf("%w: %s may not read namespace %q (granted: %s)", memory.ErrDenied, a.cfg.Name, ns, strings.Join(a.cfg.Memory.Read, ", "))
	}
	q.Within = a.cfg.Memory.Read
	return a.fleet.recall.Search(ctx, q)
}

// syncRecall lets the index catch up with recent writes, briefly: a search
// that cannot wait longer still answers from what is indexed.
func (a *Agent) syncRecall(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	if err := a.fleet.recall.Sync(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("recall sync", "err", err)
	}
}

// recalled appends to a turn's system prompt the memories relevant to the
// input, within the recall budget: each once (recall.Query.Distinct), and
// none that shares only common words with it (recallFloor). Audit records
// and the turns already in the conversation (their turn IDs in skip) are
// left out. It runs on every
// turn, so it writes straight into b: no line is built on its own.
func (a *Agent) recalled(ctx context.Context, b *strings.Builder, in Input, skip []string) {
	if strings.TrimSpace(in.Text) == "" {
		return
	}
	// A few spare hits make room for the turns skipped below.
	hits, err := a.searchHits(ctx, recall.Query{Text: in.Text, K: recallHits + 2, Floor: recallFloor, Distinct: true})
	if err != nil {
		a.log.Warn("recall for turn", "err", err)
		return
	}
	const header = "\n\nMemories that may be relevant (oldest facts may be superseded):\n"
	var stamp [len(time.DateTime) + 8]byte
	used, n := 0, 0
	for _, h := range hits {
		r := &h.Record
		if r.Kind == memory.KindAudit || r.Kind == memory.KindTurn && slices.Contains(skip, turnID(*r)) || n == recallHits {
			continue
		}
		// "- [<time> <kind> <namespace>] <text on one line>\n"
		ts := r.Time.UTC().AppendFormat(stamp[:0], time.DateTime)
		size := len("- [") + len(ts) + 1 + len(r.Kind) + 1 + len(r.Namespace) + len("] ") + len(r.Text) + 1
		if used+size > recallBytes {
			break
		}
		if n == 0 {
			b.Grow(len(header) + min(recallBytes, size*recallHits))
			b.WriteString(header)
		}
		b.WriteString("- [")
		b.Write(ts)
		b.WriteByte(' ')
		b.WriteString(string(r.Kind))
		b.WriteByte(' ')
		b.WriteString(r.Namespace)
		b.WriteString("] ")
		for text := r.Text; text != ""; {
			line, rest, more := strings.Cut(text, "\n")
			b.WriteString(line)
			if more {
				b.WriteByte(' ')
			}
			text = rest
		}
		b.WriteByte('\n')
		used += size
		n++
	}
}
