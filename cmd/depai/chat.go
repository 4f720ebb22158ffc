package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/operator"
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
	return a.Handle(ctx, agent.Input{Source: agent.SourceOperator, From: "operator", Text: text})
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
	addr      string
	agent     string
	data      string
	tokenFile string
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
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "", "operator API address (default: what depai run wrote in the data directory, else "+config.DefaultOperatorAddr+")")
	f.StringVar(&o.agent, "agent", "", "agent to talk to first (default: the fleet's first agent)")
	f.StringVar(&o.data, "data", "", "data directory of the depai run to talk to")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the operator token (default: $DEPAI_TOKEN, else the data directory's)")
	return cmd
}

func runChat(cmd *cobra.Command, o chatOptions) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir := dataDir(o.data, "")
	info, haveInfo, err := readRunInfo(dir)
	if err != nil {
		return err
	}
	addr := o.addr
	if addr == "" {
		addr = config.DefaultOperatorAddr
		if haveInfo {
			addr = info.Addr
		}
	}
	var token string
	switch {
	case o.tokenFile != "":
		token, err = operator.ReadToken(o.tokenFile)
	case os.Getenv("DEPAI_TOKEN") != "":
		token = strings.TrimSpace(os.Getenv("DEPAI_TOKEN"))
	case haveInfo:
		token, err = operator.ReadToken(info.TokenFile)
	default:
		token, err = operator.ReadToken(tokenPath("", dir))
	}
	if err != nil {
		return fmt.Errorf("%w (pass --data, --token-file or $DEPAI_TOKEN for the depai run to talk to)", err)
	}
	return chatSession(ctx, remoteBackend{operator.NewClient(addr, token)}, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o.agent)
}

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// chat is one operator chat session.
type chat struct {
	b           backend
	out, errOut io.Writer
	interactive bool
	names       []string
	current     string
	failed      int // messages whose turn failed, in a script
}

// chatSession runs a chat on in and out until end of input or ctx ends.
// Interactive (a terminal): a prompt, a banner, errors shown and carried on.
// Scripted: one message per line; it returns an error at the end if any
// message failed.
func chatSession(ctx context.Context, b backend, in io.Reader, out, errOut io.Writer, first string) error {
	names, err := b.agentNames(ctx)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("the fleet has no agents")
	}
	c := &chat{b: b, out: out, errOut: errOut, interactive: isTerminal(in), names: names, current: names[0]}
	if first != "" {
		if !c.known(first) {
			return fmt.Errorf("--agent %q: no such agent; agents: %s", first, strings.Join(names, ", "))
		}
		c.current = first
	}
	if c.interactive {
		fmt.Fprintf(out, "Chatting with %s (agents: %s). \"@NAME text\" sends to one agent, \"@all text\" to all,\n\"/agent NAME\" switches, /help lists commands, Ctrl-D quits.\n",
			c.current, strings.Join(names, ", "))
	}

	lines := make(chan string)
	readErr := make(chan error, 1)
	// Read in a goroutine so that Ctrl-C ends the chat even while it waits
	// for a line.
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64<<10), operator.DefaultMaxBodyBytes)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()
	for {
		if c.interactive {
			fmt.Fprintf(out, "%s> ", c.current)
		}
		select {
		case <-ctx.Done():
			if c.interactive {
				fmt.Fprintln(out)
			}
			return nil
		case err := <-readErr:
			if c.interactive {
				fmt.Fprintln(out)
			}
			if err != nil {
				return fmt.Errorf("reading input: %w", err)
			}
			if c.failed > 0 {
				return fmt.Errorf("%d message(s) failed", c.failed)
			}
			return nil
		case line := <-lines:
			if quit := c.line(ctx, strings.TrimSpace(line)); quit {
				return nil
			}
		}
	}
}

// line handles one line of input; it reports whether the chat should end.
func (c *chat) line(ctx context.Context, line string) (quit bool) {
	switch {
	case line == "":
		return false
	case line == "/quit" || line == "/exit":
		return true
	case line == "/agent":
		fmt.Fprintf(c.out, "talking to %s; agents: %s\n", c.current, strings.Join(c.names, ", "))
		return false
	case strings.HasPrefix(line, "/agent "):
		c.switchTo(strings.TrimSpace(strings.TrimPrefix(line, "/agent ")))
		return false
	case strings.HasPrefix(line, "@"):
		target, text, _ := strings.Cut(line[1:], " ")
		text = strings.TrimSpace(text)
		if text == "" {
			c.switchTo(target)
			return false
		}
		if target == "all" && !c.known("all") {
			for _, name := range c.names {
				fmt.Fprintf(c.out, "[%s]\n", name)
				c.send(ctx, name, text)
			}
			return false
		}
		if !c.known(target) {
			c.fail(fmt.Errorf("no agent %q; agents: %s", target, strings.Join(c.names, ", ")))
			return false
		}
		c.send(ctx, target, text)
		return false
	default:
		c.send(ctx, c.current, line)
		return false
	}
}

func (c *chat) known(name string) bool {
	for _, n := range c.names {
		if n == name {
			return true
		}
	}
	return false
}

func (c *chat) switchTo(name string) {
	if !c.known(name) {
		c.fail(fmt.Errorf("no agent %q; agents: %s", name, strings.Join(c.names, ", ")))
		return
	}
	c.current = name
	if c.interactive {
		fmt.Fprintf(c.out, "talking to %s\n", name)
	}
}

func (c *chat) fail(err error) {
	fmt.Fprintf(c.errOut, "error: %v\n", err)
	if !c.interactive {
		c.failed++
	}
}

// send sends one message and prints the turn as it streams: deltas as they
// arrive, then whatever of the reply they did not already show. Tool calls
// are shown on the terminal; in a script they go to stderr, so that stdout
// holds only replies.
func (c *chat) send(ctx context.Context, name, text string) {
	trace := c.out
	if !c.interactive {
		trace = c.errOut
	}
	var shown strings.Builder // the deltas printed so far
	for ev, err := range c.b.send(ctx, name, text) {
		if err != nil {
			if shown.Len() > 0 {
				fmt.Fprintln(c.out)
			}
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		switch ev.Type {
		case agent.EventDelta:
			shown.WriteString(ev.Text)
			fmt.Fprint(c.out, ev.Text)
		case agent.EventToolCall:
			c.endLine(&shown)
			fmt.Fprintf(trace, "  → %s %s\n", ev.Tool, abbreviate(string(ev.Data), 200))
		case agent.EventToolResult:
			c.endLine(&shown)
			if ev.Error != "" {
				fmt.Fprintf(trace, "  ← %s error: %s\n", ev.Tool, ev.Error)
			} else {
				fmt.Fprintf(trace, "  ← %s %s\n", ev.Tool, abbreviate(string(ev.Data), 200))
			}
		case agent.EventReply:
			rest, ok := strings.CutPrefix(ev.Text, shown.String())
			if !ok {
				c.endLine(&shown)
				rest = ev.Text
			}
			fmt.Fprint(c.out, rest)
			if !strings.HasSuffix(ev.Text, "\n") {
				fmt.Fprintln(c.out)
			}
		case agent.EventError:
			c.endLine(&shown)
			c.fail(fmt.Errorf("[%s] %s", ev.Code, ev.Error))
		}
	}
}

// endLine ends a line of deltas before other output, and starts the next
// deltas afresh.
func (c *chat) endLine(shown *strings.Builder) {
	if shown.Len() > 0 && !strings.HasSuffix(shown.String(), "\n") {
		fmt.Fprintln(c.out)
	}
	shown.Reset()
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
