package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/recall"
)

// memorySearchCmd is `depai memory search`: recall over the data directory's
// index (DIR/recall), which it brings up to date first. The CLI has no
// embeddings endpoint, so it ranks by BM25 alone and says so.
func memorySearchCmd(dataDir func() string) *cobra.Command {
	var ns, kind string
	var k int
	cmd := &cobra.Command{
		Use:   "search TEXT... [--ns NAMESPACE] [--kind KIND] [-k N]",
		Short: "Search memory (BM25 over the record text)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dataDir()
			return withMemory(cmd, filepath.Join(dir, "memory"), false, func(ctx context.Context, db *memory.DB) (err error) {
				idx, err := recall.Open(ctx, recall.Config{Source: db, Dir: filepath.Join(dir, "recall")})
				if err != nil {
					return err
				}
				defer func() {
					if cerr := idx.Close(); err == nil {
						err = cerr
					}
				}()
				if err := idx.Sync(ctx); err != nil {
					return err
				}
				q := recall.Query{Text: strings.Join(args, " "), K: k, Filter: memory.Query{Namespace: ns}}
				if kind != "" {
					q.Filter.Kinds = []memory.Kind{memory.Kind(kind)}
				}
				hits, err := idx.Search(ctx, q)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d hits (%s)\n", len(hits), idx.Mode())
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tTIME\tKIND\tNAMESPACE\tTEXT")
				for _, h := range hits {
					r := h.Record
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Time.UTC().Format(time.DateTime), r.Kind, r.Namespace, strings.ReplaceAll(r.Text, "\n", " "))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&ns, "ns", "", "only this namespace and those below it")
	cmd.Flags().StringVar(&kind, "kind", "", "only records of this kind")
	cmd.Flags().IntVarP(&k, "k", "k", 10, "at most this many hits")
	return cmd
}
