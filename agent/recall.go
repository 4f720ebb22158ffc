package agent

import (
	"context"

	"github.com/depai/depai/memory"
)

// search finds records matching text in the given namespaces, read through
// mem so the caller's grants apply.
func (f *Fleet) search(ctx context.Context, mem memory.Store, text string, namespaces []string, q memory.Query, limit int) ([]memory.Record, error) {
	words := lowerWords(text)
	var hits []memory.Record
	for _, ns := range namespaces {
		q.Namespace = ns
		for r, err := range mem.Query(ctx, q) {
			if err != nil {
				return nil, err
			}
			if matchesAll(lowerWords(r.Text), words) {
				hits = append(hits, r)
			}
		}
	}
	sortNewest(hits)
	return hits[:min(limit, len(hits))], nil
}

func matchesAll(have, want []string) bool {
	set := make(map[string]bool, len(have))
	for _, w := range have {
		set[w] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}
