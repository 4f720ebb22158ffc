package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ergochat/readline"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/policy"
)

// backend is where a chat sends its messages: the fleet in this process
// (depai run --chat) or a running depai run over the operator API (depai
// chat).
type backend interface {
	agentNames(ctx context.Context) ([]string, error)
	send(ctx context.Context, name, text string) iter.Seq2[agent.Event, error]
}

type localBackend struct{ f *agent.Fleet }

func (b localBackend) agentNames(context.Context) ([]string, error) {
	var names []string
	for _, a := range b.f.Agents() {
		names = append(names, a.Name())
	}
	return names, nil
}

func (b localBackend) send(ctx context.Context, name, text string) iter.Seq2[agent.Event, error] {
	a, err := b.f.Agent(name)
	if err != nil {
		return func(yield func(agent.Event, error) bool) { yield(agent.Event{}, err) }
	}
	// The terminal's operator owns the process: the admin, as the
	// generated token's holder is.
	return a.Handle(ctx, agent.Input{Source: agent.SourceOperator, From: config.GeneratedOperator, Role: policy.RoleAdmin, Text: text})
}

type remoteBackend struct{ c *operator.Client }

func (b remoteBackend) agentNames(ctx context.Context) ([]string, error) {
	list, err := b.c.Agents(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(list))
	for i, st := range list {
		names[i] = st.Name
	}
	return names, nil
}

func (b remoteBackend) send(ctx context.Context, name, text string) iter.Seq2[agent.Event, error] {
	return b.c.Send(ctx, name, text)
}

type chatOptions struct {
	apiOptions
	agent string
}

func newChatCmd() *cobra.Command {
	var o chatOptions
	cmd := &cobra.Command{
		Use:   "chat",
		Short: "Chat with the agents of a running depai run",
		Long: `Chat with the agents of a running depai run over its operator API.

The address and token are found in the data directory that depai run uses
(--data, $DEPAI_DATA, or the default); --addr, --token-file and $DEPAI_TOKEN
override them. Type a message or a command (/help, /status, /tools, /call TOOL
{json}, /stop ...) to the current agent; "@NAME text" sends to one agent,
"@all text" to every agent, "/agent NAME" switches. When stdin is not a
terminal, each line is one message, each reply is printed, and chat exits at
end of input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runChat(cmd, o)
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&o.agent, "agent", "", "agent to talk to first (default: the fleet's first agent)")
	return cmd
}

func runChat(cmd *cobra.Command, o chatOptions) error {
	in := cmd.InOrStdin()
	interactive := isTerminal(in)
	// On a terminal, Ctrl-C cancels the running turn (twice quits), so only
	// SIGTERM ends the chat by itself; in a script, SIGINT ends it too.
	sigs := []os.Signal{syscall.SIGTERM}
	if !interactive {
		sigs = append(sigs, os.Interrupt)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), sigs...)
	defer stop()
	c, err := o.client()
	if err != nil {
		return err
	}
	return chatSession(ctx, remoteBackend{c}, in, cmd.OutOrStdout(), cmd.ErrOrStderr(), sessionOptions{
		first:   o.agent,
		history: historyPath(dataDir(o.data, "")),
	})
}

// historyPath is where the line editor keeps what was typed, in the data
// directory.
func historyPath(dir string) string { return filepath.Join(dir, "chat_history") }

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// sessionOptions are the parts of a chat that differ between depai run
// --chat and depai chat.
type sessionOptions struct {
	first   string // the agent to talk to first; "": the fleet's first
	history string // the line editor's history file; "": none
	banner  string // a line the interactive banner adds (where the API is)
}

// quitWithin is how soon a second Ctrl-C must follow the first to quit.
const quitWithin = 2 * time.Second

// input is one thing the reader saw: a line, Ctrl-C, or the end.
type input struct {
	line      string
	interrupt bool
	end       bool
	err       error // why the input ended, if not at its end
}

// chat is one operator chat session. The main loop (run) owns the fields
// below mu; turns run in their own goroutines and report to done; mu
// serialises what they print.
type chat struct {
	b           backend
	interactive bool
	names       []string

	current string // the agent lines go to; read by the reader for the prompt under mu
	queue   []string
	busy    bool // a queued line's turn is running
	turns   map[int]*turn
	nextID  int
	done    chan *turn
	failed  int // messages whose turn failed, in a script
	ending  bool
	lastInt time.Time // the last Ctrl-C

	mu          sync.Mutex
	out, errOut io.Writer
	partial     bool // the last write to out did not end its line
}

// turn is one message or command in flight.
type turn struct {
	id        int
	queued    bool // from the queue (the next waits for it), not sent at once
	cancel    context.CancelFunc
	cancelled atomic.Bool // by Ctrl-C or the chat ending
	// answered: its reply is shown, and what is left is the durable write
	// of its record, which no cancel stops; Ctrl-C then means the prompt's
	// Ctrl-C, not "cancel the running turn".
	answered atomic.Bool
	failed   bool
}

// chatSession runs a chat on in and out until end of input, /quit, or ctx
// ends. On a terminal: a line editor with history, a prompt, a banner;
// input is read while a turn runs — /stop and other commands are sent at
// once, messages wait for the running turn — and Ctrl-C cancels the running
// turn (twice within 2s quits). Scripted: one message per line, in order,
// except that /stop is sent as soon as it is read; it returns an error at
// the end if any message failed.
func chatSession(ctx context.Context, b backend, in io.Reader, out, errOut io.Writer, o sessionOptions) error {
	names, err := b.agentNames(ctx)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("the fleet has no agents")
	}
	c := &chat{b: b, out: out, errOut: errOut, interactive: isTerminal(in), names: names, current: names[0],
		turns: map[int]*turn{}, done: make(chan *turn)}
	if o.first != "" {
		if !c.known(o.first) {
			return fmt.Errorf("--agent %q: no such agent; agents: %s", o.first, strings.Join(names, ", "))
		}
		c.current = o.first
	}
	inputs := make(chan input)
	next := make(chan struct{}) // the reader waits for it after each line, so the prompt names the right agent
	quit := make(chan struct{})
	defer close(quit)
	var interrupts chan os.Signal
	if c.interactive {
		rl, err := readline.NewFromConfig(&readline.Config{
			Prompt:          c.prompt(),
			HistoryFile:     o.history,
			HistoryLimit:    1000,
			Stdin:           in,
			Stdout:          out,
			Stderr:          errOut,
			InterruptPrompt: "^C",
			EOFPrompt:       "\n",
		})
		if err != nil {
			return fmt.Errorf("line editor: %w", err)
		}
		defer rl.Close()
		// The conversation, its errors included, is on the terminal;
		// stderr may hold the logs.
		c.out = rl.Stdout()
		c.errOut = c.out
		fmt.Fprintf(c.out, "Chatting with %s (agents: %s). \"@NAME text\" sends to one agent, \"@all text\" to all,\n\"/agent NAME\" switches, /help lists commands, /stop is the emergency stop (also while a turn runs),\nCtrl-C cancels the running turn, Ctrl-C twice or Ctrl-D quits.\n",
			c.current, strings.Join(names, ", "))
		if o.banner != "" {
			fmt.Fprintln(c.out, o.banner)
		}
		// Ctrl-C reaches readline as a key while it reads; SIGINT (a
		// terminal not in raw mode, kill -INT) means the same.
		interrupts = make(chan os.Signal, 1)
		signal.Notify(interrupts, os.Interrupt)
		defer signal.Stop(interrupts)
		go c.readTerminal(rl, inputs, next, quit)
	} else {
		go readScript(in, inputs, next, quit)
	}
	return c.run(ctx, inputs, next, interrupts)
}

// readTerminal feeds the line editor's lines to the chat.
func (c *chat) readTerminal(rl *readline.Instance, inputs chan<- input, next <-chan struct{}, quit <-chan struct{}) {
	for {
		rl.SetPrompt(c.prompt())
		line, err := rl.Readline()
		var in input
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			in.interrupt = true
		case errors.Is(err, io.EOF):
			in.end = true
		case err != nil:
			in.end, in.err = true, err
		default:
			in.line = line
		}
		select {
		case inputs <- in:
		case <-quit:
			return
		}
		if in.end {
			return
		}
		select {
		case <-next:
		case <-quit:
			return
		}
	}
}

// readScript feeds the lines of a script to the chat.
func readScript(r io.Reader, inputs chan<- input, next <-chan struct{}, quit <-chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), operator.DefaultMaxBodyBytes)
	for sc.Scan() {
		select {
		case inputs <- input{line: sc.Text()}:
		case <-quit:
			return
		}
		select {
		case <-next:
		case <-quit:
			return
		}
	}
	select {
	case inputs <- input{end: true, err: sc.Err()}:
	case <-quit:
	}
}

func (c *chat) prompt() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current + "> "
}

// run is the main loop.
func (c *chat) run(ctx context.Context, inputs <-chan input, next chan<- struct{}, interrupts <-chan os.Signal) error {
	ctxDone := ctx.Done()
	for {
		if c.ending && len(c.turns) == 0 && (len(c.queue) == 0 || ctx.Err() != nil) {
			break
		}
		select {
		case <-ctxDone:
			ctxDone = nil
			c.end()
		case t := <-c.done:
			delete(c.turns, t.id)
			if t.failed && !c.interactive {
				c.failed++
			}
			if t.queued {
				c.busy = false
				c.pump(ctx)
			}
		case <-interrupts:
			c.interrupt()
		case in := <-inputs:
			switch {
			case in.interrupt:
				c.interrupt()
			case in.end:
				if in.err != nil {
					c.printErr(fmt.Sprintf("error: reading input: %v", in.err))
					c.failed++
				}
				if c.interactive {
					c.end() // Ctrl-D: quit now
				} else {
					c.ending = true // the script's turns finish first
				}
				continue
			default:
				if quit := c.dispatch(ctx, strings.TrimSpace(in.line)); quit {
					c.end()
				}
			}
			if !c.ending {
				next <- struct{}{}
			}
		}
	}
	if c.failed > 0 && !c.interactive {
		return fmt.Errorf("%d message(s) failed", c.failed)
	}
	return nil
}

// end cancels what runs and drops what waits; run returns once the turns
// have ended.
func (c *chat) end() {
	c.ending = true
	c.queue = nil
	for _, t := range c.turns {
		t.cancelled.Store(true)
		t.cancel()
	}
}

// interrupt is Ctrl-C: cancel the running turns and what waits; a second
// one soon after quits.
func (c *chat) interrupt() {
	now := time.Now()
	if now.Sub(c.lastInt) < quitWithin {
		c.end()
		return
	}
	c.lastInt = now
	n := 0
	c.queue = nil
	for _, t := range c.turns {
		if t.answered.Load() {
			continue
		}
		n++
		t.cancelled.Store(true)
		t.cancel()
	}
	if n > 0 {
		c.print("(cancelled the running turn; Ctrl-C again within 2s quits)\n")
	} else {
		c.print("(Ctrl-C again within 2s, or Ctrl-D, quits)\n")
	}
}

// isStop reports whether line is the emergency stop, which never waits.
func isStop(line string) bool {
	cmd, _, _ := strings.Cut(line, " ")
	return cmd == "/stop"
}

// dispatch handles a line as it is typed; it reports whether the chat
// should end.
func (c *chat) dispatch(ctx context.Context, line string) (quit bool) {
	switch {
	case line == "":
		return false
	case line == "/quit" || line == "/exit":
		return true
	case c.busy && (isStop(line) || c.interactive && strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "/agent")):
		// At once, whatever runs: the agent's /stop does not wait for
		// turns, and on a terminal other commands (/status, /approve …)
		// answer while a turn runs — it may be waiting for that approval.
		name := c.current
		c.start(ctx, false, func(ctx context.Context, t *turn) { c.send(ctx, t, name, line, true) })
		return false
	}
	c.queue = append(c.queue, line)
	if c.busy && c.interactive {
		c.print("(waits for the running turn; /stop or Ctrl-C cancels it)\n")
	}
	c.pump(ctx)
	return false
}

// pump runs queued lines until one starts a turn.
func (c *chat) pump(ctx context.Context) {
	for !c.busy && len(c.queue) > 0 {
		line := c.queue[0]
		c.queue = c.queue[1:]
		c.queued(ctx, line)
	}
}

// queued handles a line in its turn: agent switches at once, messages as a
// turn the next line waits for.
func (c *chat) queued(ctx context.Context, line string) {
	switch {
	case line == "/agent":
		c.print(fmt.Sprintf("talking to %s; agents: %s\n", c.current, strings.Join(c.names, ", ")))
	case strings.HasPrefix(line, "/agent "):
		c.switchTo(strings.TrimSpace(strings.TrimPrefix(line, "/agent ")))
	case strings.HasPrefix(line, "@"):
		target, text, _ := strings.Cut(line[1:], " ")
		text = strings.TrimSpace(text)
		switch {
		case text == "":
			c.switchTo(target)
		case target == "all" && !c.known("all"):
			names := c.names
			c.start(ctx, true, func(ctx context.Context, t *turn) {
				for _, name := range names {
					if ctx.Err() != nil {
						return
					}
					c.print(fmt.Sprintf("[%s]\n", name))
					c.send(ctx, t, name, text, false)
				}
			})
		case !c.known(target):
			c.fail(fmt.Errorf("no agent %q; agents: %s", target, strings.Join(c.names, ", ")))
		default:
			c.start(ctx, true, func(ctx context.Context, t *turn) { c.send(ctx, t, target, text, false) })
		}
	default:
		name := c.current
		c.start(ctx, true, func(ctx context.Context, t *turn) { c.send(ctx, t, name, line, false) })
	}
}

// start runs f as a turn in its own goroutine. A queued turn holds the
// queue until it ends.
func (c *chat) start(ctx context.Context, queued bool, f func(context.Context, *turn)) {
	tctx, cancel := context.WithCancel(ctx)
	c.nextID++
	t := &turn{id: c.nextID, queued: queued, cancel: cancel}
	c.turns[t.id] = t
	if queued {
		c.busy = true
	}
	go func() {
		defer cancel()
		f(tctx, t)
		c.done <- t
	}()
}

func (c *chat) known(name string) bool { return slices.Contains(c.names, name) }

func (c *chat) switchTo(name string) {
	if !c.known(name) {
		c.fail(fmt.Errorf("no agent %q; agents: %s", name, strings.Join(c.names, ", ")))
		return
	}
	c.mu.Lock()
	c.current = name
	c.mu.Unlock()
	if c.interactive {
		c.print(fmt.Sprintf("talking to %s\n", name))
	}
}

// fail reports a line the chat itself could not send.
func (c *chat) fail(err error) {
	c.printErr(fmt.Sprintf("error: %v", err))
	if !c.interactive {
		c.failed++
	}
}

// print writes whole text to out, starting a new line if deltas left one
// open.
func (c *chat) print(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partial {
		io.WriteString(c.out, "\n")
		c.partial = false
	}
	io.WriteString(c.out, s)
	c.partial = s != "" && !strings.HasSuffix(s, "\n")
}

// printErr writes a line to errOut.
func (c *chat) printErr(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partial && c.errOut == c.out {
		io.WriteString(c.out, "\n")
		c.partial = false
	}
	io.WriteString(c.errOut, line+"\n")
}

// send sends one message and prints the turn as it streams: deltas as they
// arrive (on a terminal, the line editor redraws the prompt below them),
// then whatever of the reply they did not already show. Tool calls
// are shown on the terminal; in a script they go to stderr, so that stdout
// holds only replies. whole prints the turn in one piece at its end (a
// command sent while another turn streams). A failed turn is printed as
// "error [code]: message" on stderr and marks t failed.
func (c *chat) send(ctx context.Context, t *turn, name, text string, whole bool) {
	var (
		shown   strings.Builder // the reply's deltas received so far
		pending strings.Builder // what is not printed yet
		trace   []string        // tool lines, for stderr in a script
	)
	flush := func(all bool) {
		full := pending.String()
		s := full
		if !all && whole {
			return
		}
		pending.Reset()
		pending.WriteString(full[len(s):])
		if s == "" {
			return
		}
		c.mu.Lock()
		io.WriteString(c.out, s)
		c.partial = !strings.HasSuffix(s, "\n")
		c.mu.Unlock()
	}
	endLine := func() {
		if shown.Len() > 0 && !strings.HasSuffix(shown.String(), "\n") {
			pending.WriteString("\n")
		}
		shown.Reset()
	}
	toolLine := func(s string) {
		endLine()
		if c.interactive {
			pending.WriteString(s + "\n")
			return
		}
		trace = append(trace, s)
	}
	defer func() {
		flush(true)
		for _, s := range trace {
			c.printErr(s)
		}
	}()
	for ev, err := range c.b.send(ctx, name, text) {
		if err != nil {
			endLine()
			flush(true)
			var oe *operator.Error
			switch {
			case t.cancelled.Load() || ctx.Err() != nil:
				// Ctrl-C: said already.
			case errors.As(err, &oe) && oe.Status == 0:
				t.failed = true
				c.printErr(fmt.Sprintf("error [%s]: %s", oe.Code, oe.Message))
			default:
				t.failed = true
				c.printErr(fmt.Sprintf("error: %v", err))
			}
			return
		}
		switch ev.Type {
		case agent.EventDelta:
			shown.WriteString(ev.Text)
			pending.WriteString(ev.Text)
		case agent.EventToolCall:
			toolLine(fmt.Sprintf("  → %s %s", ev.Tool, abbreviate(string(ev.Data), 200)))
		case agent.EventToolResult:
			if ev.Error != "" {
				toolLine(fmt.Sprintf("  ← %s error: %s", ev.Tool, ev.Error))
			} else {
				toolLine(fmt.Sprintf("  ← %s %s", ev.Tool, abbreviate(string(ev.Data), 200)))
			}
		case agent.EventReply:
			rest, ok := strings.CutPrefix(ev.Text, shown.String())
			if !ok {
				endLine()
				rest = ev.Text
			}
			pending.WriteString(rest)
			if !strings.HasSuffix(ev.Text, "\n") {
				pending.WriteString("\n")
			}
			shown.Reset()
			t.answered.Store(true)
		case agent.EventError:
			endLine()
			flush(true)
			if !t.cancelled.Load() {
				t.failed = true
				c.printErr(fmt.Sprintf("error [%s]: %s", cmp.Or(ev.Code, "turn_failed"), ev.Error))
			}
			return
		}
		flush(false)
	}
}

// abbreviate shortens s to at most n runes.
func abbreviate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i] + "…"
		}
		n--
	}
	return s
}
