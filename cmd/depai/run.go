package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/metrics"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/operator/console"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/transports"
)

// Shutdown budget: Ctrl-C to exit within a second. Turns streaming over the
// API get the first part to finish; then they are cancelled and the fleet
// gets the rest to store them and close memory.
const (
	apiGrace     = 250 * time.Millisecond
	closeTimeout = 700 * time.Millisecond
)

type runOptions struct {
	data  string
	addr  string
	chat  bool
	agent string
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run the agents of a config file in the foreground",
		Long: `Run the agents of FILE (one agent, or a fleet) in the foreground and serve the
operator API on loopback. Ctrl-C or SIGTERM shuts down cleanly.

With --chat the terminal becomes an operator chat with the agents: type a
message or a command (/help, /status, /tools, /call TOOL {json}, /stop ...)
to the current agent; "@NAME text" sends to one agent, "@all text" to every
agent, "/agent NAME" switches. When stdin is not a terminal, each line is one
message, each reply is printed, and depai exits at end of input.`,
		Example: `  depai run examples/fleet/fleet.yaml
  printf '/status\n/tools\n' | depai run examples/fleet/fleet.yaml --chat`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFleet(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "", "data directory (memory, operator token); see depai --help for the default")
	f.StringVar(&o.addr, "addr", "", `operator API address on loopback (default: the config's operator.addr, else `+config.DefaultOperatorAddr+`; port 0 picks a free one)`)
	f.BoolVar(&o.chat, "chat", false, "chat with the agents on this terminal (or over stdin)")
	f.StringVar(&o.agent, "agent", "", "with --chat: the agent to talk to first (default: the first in FILE)")
	return cmd
}

func runFleet(cmd *cobra.Command, o runOptions, file string) (err error) {
	start := time.Now()
	// A second Ctrl-C, after stop, kills the process the default way. On a
	// chat terminal, Ctrl-C belongs to the chat (it cancels the running
	// turn; twice quits), so SIGINT does not stop the fleet by itself.
	sigs := []os.Signal{syscall.SIGTERM}
	chatTerminal := o.chat && isTerminal(cmd.InOrStdin())
	if !chatTerminal {
		sigs = append(sigs, os.Interrupt)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), sigs...)
	defer stop()
	log, level, err := newLogger(cmd, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	cfg, err := config.Load(file)
	if err != nil {
		return err
	}
	var stopping time.Time // set once shutdown starts; the deferred calls below do it
	defer func() {
		if !stopping.IsZero() {
			log.Info("stopped", "shutdown", time.Since(stopping).Round(10*time.Microsecond))
		}
	}()
	if limit, ok := lowMemLimit(cfg); ok {
		debug.SetMemoryLimit(limit)
		log.Info("low-memory profile: Go memory limit set", "bytes", limit)
	}
	dir := dataDir(o.data, cfg.DataDir)
	tracer, stopTracing, err := tracerFromEnv(ctx)
	if err != nil {
		return err
	}
	defer stopTracing(context.WithoutCancel(ctx))
	hub, m := console.NewHub(), metrics.New()
	defer hub.Close()
	fleet, err := agent.Open(ctx, cfg, agent.Options{DataDir: dir, Logger: log, Secrets: os.LookupEnv, Tracer: tracer, Events: hub.Publish, Metrics: m, NewTransports: transports.Default,
		Mesh: meshOptions(dir)})
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C while plugins were still building or loading: the
			// operator asked to stop, and nothing had started yet.
			log.Info("interrupted before ready", "err", err)
			return nil
		}
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if cerr := fleet.Close(cctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	tokenFile := tokenPath(cfg.Operator.TokenFile, dir)
	srv, created, err := startAPI(cfg, o, fleet, tokenFile, hub, m, log)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiGrace)
		defer cancel()
		// A deadline here only means turns were still streaming; they have
		// been cancelled, and fleet.Close stores them.
		if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
			err = errors.Join(err, serr)
		}
	}()
	absDir, _ := filepath.Abs(dir)
	if err := writeRunInfo(dir, runInfo{Addr: srv.Addr(), TokenFile: tokenFile, PID: os.Getpid()}); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, runInfoFile))

	log.Info("operator API and console", "url", "http://"+srv.Addr(), "console", "http://"+srv.Addr()+"/", "token_file", tokenFile, "new_token", created)
	var names []string
	for _, a := range fleet.Agents() {
		names = append(names, a.Name())
	}
	log.Info("ready", "agents", strings.Join(names, ","), "data", absDir, "startup", time.Since(start).Round(10*time.Microsecond))
	go func() {
		// Commands and the e-stop work from "ready"; turns and tool calls
		// wait for plugins, which load (and build from source) meanwhile.
		err := fleet.WaitPlugins(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Error("plugins not loaded; the agents run without them", "err", err)
		default:
			log.Info("plugins loaded", "startup", time.Since(start).Round(10*time.Microsecond))
		}
	}()

	if o.chat {
		if chatTerminal && !cmd.Flags().Changed("log-level") && level.Level() < slog.LevelWarn {
			// Info logs would break into the conversation on the terminal.
			log.Info("while chatting, only warnings and errors are logged (--log-level changes that)")
			level.Set(slog.LevelWarn)
		}
		err = chatUntilDone(ctx, cmd, fleet, sessionOptions{
			first:   o.agent,
			history: historyPath(dir),
			banner:  fmt.Sprintf("Operator API on http://%s (token in %s; depai chat --data %s joins).", srv.Addr(), tokenFile, absDir),
		}, served)
	} else {
		select {
		case <-ctx.Done():
		case err = <-served:
		}
	}
	stop()
	stopping = time.Now()
	log.Info("shutting down")
	return err
}

// startAPI binds the operator API (with the console, the event stream,
// metrics and MCP) on the configured address, or on a free port for a chat
// with none configured.
func startAPI(cfg *config.File, o runOptions, fleet *agent.Fleet, tokenFile string, hub *console.Hub, m *metrics.Metrics, log *slog.Logger) (*operator.Server, bool, error) {
	ops, created, err := operators(cfg.Operator, tokenFile)
	if err != nil {
		return nil, false, err
	}
	addr := cmp.Or(o.addr, cfg.Operator.Addr)
	if addr == "" && o.chat {
		// Nothing configured: a free port, so that two people running the
		// README's command do not clash. The log and the banner say which.
		addr = "127.0.0.1:0"
	}
	var agents []operator.Agent
	for _, a := range fleet.Agents() {
		agents = append(agents, a)
	}
	sell, err := fleet.SellHandler()
	if err != nil {
		return nil, false, err
	}
	srv, err := operator.NewServer(operator.Config{Addr: addr, Agents: agents, Operators: ops, Logger: log,
		Events: hub, Console: true, Metrics: m.Handler(), MCP: true, Sell: sell, Memory: fleet.Policy(), Remote: remoteAgents(fleet)})
	if err != nil {
		return nil, false, fmt.Errorf("%w (is another depai run using it? pass --addr 127.0.0.1:0 for a free port)", err)
	}
	return srv, created, nil
}

// chatUntilDone runs the terminal chat with the fleet until it ends, or
// until the API stops serving.
func chatUntilDone(ctx context.Context, cmd *cobra.Command, fleet *agent.Fleet, so sessionOptions, served <-chan error) error {
	chatDone := make(chan error, 1)
	chatCtx, chatStop := context.WithCancel(ctx)
	defer chatStop()
	go func() {
		chatDone <- chatSession(chatCtx, localBackend{fleet}, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), so)
	}()
	select {
	case err := <-chatDone:
		return err
	case err := <-served:
		chatStop()
		return err
	}
}

// operators are the token holders of the API: the generated token's admin
// "operator", and the config's named operators with their tokens read from
// their files (0600, as the generated one) or environment variables.
func operators(cfg config.Operator, tokenFile string) (ops []operator.Operator, created bool, err error) {
	token, created, err := operator.LoadOrCreateToken(tokenFile)
	if err != nil {
		return nil, false, err
	}
	ops = append(ops, operator.Operator{Name: config.GeneratedOperator, Role: policy.RoleAdmin, Token: token})
	for _, op := range cfg.Operators {
		var tok string
		if op.TokenFile != "" {
			if tok, err = operator.ReadToken(op.TokenFile); err != nil {
				return nil, false, fmt.Errorf("operator %q: %w", op.Name, err)
			}
		} else if tok = strings.TrimSpace(os.Getenv(op.TokenEnv)); tok == "" {
			return nil, false, fmt.Errorf("operator %q: $%s (its token_env) is not set or empty", op.Name, op.TokenEnv)
		}
		ops = append(ops, operator.Operator{Name: op.Name, Role: policy.Role(op.Role), Token: tok})
	}
	return ops, created, nil
}

// lowMemRuntimeLimit is the Go runtime's soft memory limit when an agent
// asks for the low-memory profile: the store's part of the footprint is
// bounded by its profile, and this keeps the heap from growing past the
// rest of a small robot's budget.
const lowMemRuntimeLimit = 96 << 20

// lowMemLimit is the memory limit to set for cfg: only with the lowmem
// profile, and never over an explicit GOMEMLIMIT.
func lowMemLimit(cfg *config.File) (int64, bool) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	for _, a := range cfg.Agents {
		if a.Memory.Profile == config.ProfileLowMem {
			return lowMemRuntimeLimit, true
		}
	}
	return 0, false
}
