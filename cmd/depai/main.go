// Command depai runs fleets of agents and lets operators command them.
//
//	depai run FILE [--data DIR] [--addr HOST:PORT] [--chat]
//	depai chat [--addr HOST:PORT] [--agent NAME] [--data DIR]
//	depai memory get|export|import|stats [--data DIR]
//	depai plugin new|build|inspect|test
//	depai version
//
// The data directory holds the fleet's memory and the operator token. It is,
// in order: --data, $DEPAI_DATA, the config's data_dir, then
// $XDG_STATE_HOME/depai (~/.local/state/depai when XDG_STATE_HOME is unset,
// ./.depai when there is no home directory). One `depai run` uses a data
// directory at a time; give each fleet its own to run several at once.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "depai:", err)
		os.Exit(1)
	}
}

// run executes the command line args.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "depai",
		Short: "Autonomous agents for the physical world, commanded by chat",
		Long: `depai runs fleets of agents that share persistent memory and load sandboxed
plugins, and lets operators command them by chat.

The data directory (memory, operator token) is --data, else $DEPAI_DATA, else
the config's data_dir, else $XDG_STATE_HOME/depai (~/.local/state/depai).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(newRunCmd(), newChatCmd(), newMCPCmd(), newMemoryCmd(), newAuditCmd(), newPluginCmd(), newVersionCmd())
	root.AddCommand(newIDCmd(), newWalletCmd())
	return root
}

// newLogger returns a text logger on w at the level the --log-level flag
// names, and that level, which the caller may change.
func newLogger(cmd *cobra.Command, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	name, err := cmd.Flags().GetString("log-level")
	if err != nil {
		return nil, nil, err
	}
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", name)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), level, nil
}

// quietLogger logs only warnings and errors to w: for the one-shot commands,
// whose output is their answer and where the store's and plugins' routine
// logs would be noise.
func quietLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}

// versionString describes this binary from its build information.
func versionString() string {
	version, commit, modified := "(devel)", "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
				if len(commit) > 12 {
					commit = commit[:12]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += "-dirty"
	}
	return strings.Join([]string{"depai", version, "commit", commit, runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH}, " ")
}
