package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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
	if namespace != "" && !memory.Granted(a.cfg.Memory.Read, namespace) {
		return nil, fmt.Errorf("%w: %s may not read namespace %q (granted: %s)", memory.ErrDenied, a.cfg.Name, namespace, strings.Join(a.cfg.Memory.Read, ", "))
	}
	hits, err := a.fleet.recall.Search(ctx, recall.Query{
		Text:   text,
		K:      k,
		Filter: memory.Query{Namespace: namespace, Kinds: kinds},
		Within: a.cfg.Memory.Read,
	})
	if err != nil {
		return nil, err
	}
	out := make([]memory.Record, len(hits))
	for i, h := range hits {
		out[i] = h.Record
	}
	return out, nil
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

// recalled is the part of a turn's system prompt that carries memories
// relevant to the input, within the recall budget. Audit records and the
// turns already in the conversation are left out.
func (a *Agent) recalled(ctx context.Context, in Input, inConversation map[string]bool) string {
	if strings.TrimSpace(in.Text) == "" {
		return ""
	}
	// A few spare hits make room for the turns skipped below.
	recs, err := a.search(ctx, in.Text, "", nil, recallHits+2)
	if err != nil {
		a.log.Warn("recall for turn", "err", err)
		return ""
	}
	var b strings.Builder
	n := 0
	for _, r := range recs {
		if r.Kind == memory.KindAudit || r.Kind == memory.KindTurn && inConversation[turnID(r)] || n == recallHits {
			continue
		}
		line := fmt.Sprintf("- [%s %s %s] %s\n", r.Time.UTC().Format(time.DateTime), r.Kind, r.Namespace, strings.ReplaceAll(r.Text, "\n", " "))
		if b.Len()+len(line) > recallBytes {
			break
		}
		b.WriteString(line)
		n++
	}
	if n == 0 {
		return ""
	}
	return "Memories that may be relevant (oldest facts may be superseded):\n" + b.String()
}
