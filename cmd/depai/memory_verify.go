package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/depai/depai/memory"
)

// errDamaged makes `depai memory verify` exit non-zero after it printed
// the report.
var errDamaged = errors.New("the store is damaged")

func memoryVerifyCmd(storeDir func() string) *cobra.Command {
	var repair, asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--repair] [--json]",
		Short: "Check every table block, log entry and record of the store; --repair salvages a damaged one",
		Long: `Check the store without opening it and without writing to it (so it works on
a read-only copy): every table block's checksum, every write-ahead and
value-log entry's checksum, every record's encoding, the sequence mark
that proves no acknowledged commit is missing, and gaps in the record
Seqs. Exits non-zero if anything is damaged.

With --repair, a damaged store is salvaged: every record that verifies is
kept with its ID and Seq, the indexes are rebuilt, the damaged directory
is kept beside it (DIR/memory.damaged-TIME), and the records lost are
listed by Seq. The recall index rebuilds itself on the next start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := storeDir()
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("no memory store at %s (pass the agent's data directory with --data): %w", dir, err)
			}
			ctx := cmd.Context()
			rep, err := memory.Verify(ctx, dir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !repair || rep.OK() {
				if asJSON {
					if err := writeJSON(out, rep); err != nil {
						return err
					}
				} else {
					printVerify(out, rep)
				}
				if !rep.OK() {
					return fmt.Errorf("%w: %d problem(s); `depai memory verify --repair --data DIR` keeps what verifies", errDamaged, len(rep.Damage))
				}
				return nil
			}
			rr, err := memory.Repair(ctx, memory.Config{Dir: dir, Logger: quietLogger(cmd.ErrOrStderr()), GCInterval: -1})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, rr)
			}
			for _, d := range rr.Damage {
				fmt.Fprintf(out, "damaged: %s\n", d)
			}
			fmt.Fprintf(out, "repaired %s: %d records kept, %d lost", dir, rr.Salvaged, rr.LostCount())
			for i, l := range rr.Lost {
				if i == 0 {
					fmt.Fprint(out, " (seq ")
				} else {
					fmt.Fprint(out, ", ")
				}
				if l.From == l.To {
					fmt.Fprint(out, l.From)
				} else {
					fmt.Fprintf(out, "%d-%d", l.From, l.To)
				}
				if i == len(rr.Lost)-1 {
					fmt.Fprint(out, ")")
				}
			}
			fmt.Fprintf(out, "\nthe damaged store was moved to %s\n", rr.Damaged)
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "salvage a damaged store (keeps the damaged directory beside it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func printVerify(w io.Writer, rep memory.VerifyReport) {
	fmt.Fprintf(w, "store %s: %d tables (%d blocks), %d logs (%d entries), %d records, last seq %d, sequence mark %d\n",
		rep.Dir, rep.Tables, rep.Blocks, rep.Logs, rep.Entries, rep.Records, rep.LastSeq, rep.Mark)
	if rep.Expired > 0 {
		fmt.Fprintf(w, "%d expired records not yet compacted away\n", rep.Expired)
	}
	if rep.Torn > 0 {
		fmt.Fprintf(w, "%d bytes of a write a crash interrupted (never acknowledged; dropped on the next open)\n", rep.Torn)
	}
	if n := len(rep.Gaps); n > 0 {
		var missing uint64
		for _, g := range rep.Gaps {
			missing += g.N()
		}
		fmt.Fprintf(w, "%d seqs in %d gaps with no record (expired and compacted, or skipped by an import), first %d-%d\n", missing, n, rep.Gaps[0].From, rep.Gaps[0].To)
	}
	for _, d := range rep.Damage {
		fmt.Fprintf(w, "DAMAGED: %s\n", d)
	}
	if rep.OK() {
		fmt.Fprintln(w, "ok")
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
