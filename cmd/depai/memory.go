package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/depai/depai/memory"
)

// newMemoryCmd is `depai memory`: inspect, export and import the memory of
// a data directory (the store lives in DIR/memory). The store is opened
// directly, so a `depai run` must not be using the directory at the time.
func newMemoryCmd() *cobra.Command {
	var data string
	var readOnly bool
	cmd := &cobra.Command{
		Use:   "memory",
		Short: "Search, inspect, export and import the memory of a data directory",
		Long: `Inspect, export and import the memory of a data directory (DIR/memory).

The data directory is --data, else $DEPAI_DATA, else $XDG_STATE_HOME/depai
(~/.local/state/depai). Stop the depai run that uses it first.

A store on a read-only file system or copy is read with --read-only (get,
export, stats, search); nothing in it is written. 'depai memory verify'
checks every file without writing anything, and with --repair salvages a
damaged store.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", "", "data directory; the store is DIR/memory")
	cmd.PersistentFlags().BoolVar(&readOnly, "read-only", false, "open the store read-only (a read-only file system or copy); writes fail")

	storeDir := func() string { return filepath.Join(dataDir(data, ""), "memory") }
	cmd.AddCommand(
		memoryGetCmd(storeDir),
		memoryExportCmd(storeDir),
		memoryImportCmd(storeDir),
		memoryStatsCmd(storeDir),
		memoryVerifyCmd(storeDir),
		memorySearchCmd(func() string { return dataDir(data, "") }),
	)
	return cmd
}

// openMemory opens the store in dir. Unless create is set, a missing store
// is an error rather than a new empty one.
func openMemory(ctx context.Context, cmd *cobra.Command, dir string, create bool) (*memory.DB, error) {
	if !create {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no memory store at %s (pass the agent's data directory with --data)", dir)
		}
	}
	// badger's own log is noise on a terminal; warnings and errors still show.
	logger := quietLogger(cmd.ErrOrStderr())
	readOnly, _ := cmd.Flags().GetBool("read-only") // inherited from `depai memory`
	return memory.Open(ctx, memory.Config{Dir: dir, Logger: logger, GCInterval: -1, ReadOnly: readOnly && !create})
}

// withMemory runs fn on the open store and closes it, keeping fn's error first.
func withMemory(cmd *cobra.Command, dir string, create bool, fn func(ctx context.Context, db *memory.DB) error) (err error) {
	ctx := cmd.Context() // cobra's Execute sets it
	db, err := openMemory(ctx, cmd, dir, create)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	return fn(ctx, db)
}

func memoryGetCmd(storeDir func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Print one record as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMemory(cmd, storeDir(), false, func(ctx context.Context, db *memory.DB) error {
				rec, err := db.Get(ctx, args[0])
				if err != nil {
					return err
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(rec)
			})
		},
	}
}

func memoryExportCmd(storeDir func() string) *cobra.Command {
	var ns, out string
	cmd := &cobra.Command{
		Use:   "export [--ns NAMESPACE] [-o FILE]",
		Short: "Write records as JSONL (one JSON record per line, oldest first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ns != "" {
				if err := memory.CheckNamespace(ns); err != nil {
					return fmt.Errorf("--ns: %w", err)
				}
			}
			return withMemory(cmd, storeDir(), false, func(ctx context.Context, db *memory.DB) error {
				w := cmd.OutOrStdout()
				var f *os.File
				if out != "" && out != "-" {
					var err error
					if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
						return err
					}
					w = f
				}
				n, err := memory.Export(ctx, db, w, memory.Query{Namespace: ns})
				if f != nil {
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					return err
				}
				if f != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "exported %d records to %s\n", n, out)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&ns, "ns", "", "only this namespace and those below it")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE (mode 0600) instead of stdout")
	return cmd
}

func memoryImportCmd(storeDir func() string) *cobra.Command {
	var allOrNothing bool
	cmd := &cobra.Command{
		Use:   "import FILE [--all-or-nothing]",
		Short: "Read records from a JSONL export (FILE - is stdin)",
		Long: `Read records from a JSONL file as 'depai memory export' writes it. Records keep
their IDs and times; one whose ID is already stored is skipped, so an
interrupted import can be run again. Malformed lines are reported by line
number; the good lines are imported unless --all-or-nothing is given, and
either way the command then exits non-zero.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			return withMemory(cmd, storeDir(), true, func(ctx context.Context, db *memory.DB) error {
				rep, err := db.Import(ctx, r, memory.ImportOptions{AllOrNothing: allOrNothing})
				for _, b := range rep.Bad {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", args[0], b)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "imported %d of %d records (%d already present, %d expired, %d malformed lines)\n",
					rep.Imported, rep.Lines, rep.Duplicates, rep.Expired, len(rep.Bad))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&allOrNothing, "all-or-nothing", false, "import nothing if any line is malformed")
	return cmd
}

func memoryStatsCmd(storeDir func() string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Count records per namespace and show the store's size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMemory(cmd, storeDir(), false, func(ctx context.Context, db *memory.DB) error {
				st, err := db.Stats(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(st)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "store\t%s\n", st.Dir)
				fmt.Fprintf(tw, "records\t%d\n", st.Records)
				fmt.Fprintf(tw, "last seq\t%d\n", st.LastSeq)
				fmt.Fprintf(tw, "disk\t%s\n", byteSize(st.DiskBytes))
				for _, ns := range slices.Sorted(maps.Keys(st.Namespaces)) {
					fmt.Fprintf(tw, "  %s\t%d\n", ns, st.Namespaces[ns])
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the stats as JSON")
	return cmd
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
