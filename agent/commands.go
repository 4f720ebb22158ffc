package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/depai/depai/memory"
)

const helpText = `Operator commands (they bypass the model and work without one):
  /help                     this list
  /status                   every agent's state, the emergency stop and memory
  /tools                    the tools this agent can call
  /call TOOL {json}         run a tool directly, e.g. /call clock {}
  /memory recent [N]        the newest records this agent can read
  /memory search TEXT       search memory
  /memory get ID            one record
  /memory history NS KEY    the versions of a fact
  /plugins [list]           loaded plugins; /plugins load|unload|reload NAME
  /agents                   every agent's state
  /ask AGENT TEXT           send TEXT to another agent and show its reply
  /stop                     EMERGENCY STOP: cancel running turns, lock actuators and payments fleet-wide
  /resume                   release the emergency stop
Anything else is a message to the agent's model.`

// command runs an operator command. It never calls the model.
func (a *Agent) command(ctx context.Context, text string, yield func(Event, error) bool) {
	name, rest, _ := strings.Cut(text, " ")
	rest = strings.TrimSpace(rest)
	if name == "/tools" || name == "/call" {
		// Answer with every tool the agent will have, not those loaded so far.
		if err := a.waitPlugins(ctx); err != nil {
			yield(Event{Type: EventReply, Text: "error: " + err.Error()}, nil)
			return
		}
	}
	var reply string
	switch name {
	case "/help":
		reply = helpText
	case "/status":
		reply = a.statusReply()
	case "/agents":
		reply = a.agentsReply()
	case "/tools":
		reply = a.toolsReply()
	case "/call":
		reply = a.callCommand(ctx, rest)
	case "/memory":
		reply = a.memoryCommand(ctx, rest)
	case "/plugins":
		reply = a.pluginsCommand(ctx, rest)
	case "/ask":
		reply = a.askCommand(ctx, rest)
	case "/stop":
		n := a.fleet.engageStop()
		a.audit(ctx, "estop.engage", "fleet", "operator", nil, nil, nil)
		reply = fmt.Sprintf("EMERGENCY STOP engaged: %d running turn(s) cancelled; actuators and payments are locked fleet-wide until /resume.", n)
	case "/resume":
		a.fleet.estop.Store(false)
		a.audit(ctx, "estop.release", "fleet", "operator", nil, nil, nil)
		reply = "Emergency stop released: actuators and payments are unlocked."
	default:
		reply = fmt.Sprintf("unknown command %s; /help lists the commands", name)
	}
	yield(Event{Type: EventReply, Text: reply}, nil)
}

// formatStatus is the status table; the agent answering is marked with "*".
func formatStatus(ss []Status, current string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  AGENT\tROLE\tSTATE\tMODEL\tTOOLS\tTURNS\tUP\tMEMORY")
	for _, s := range ss {
		mark := " "
		if s.Name == current {
			mark = "*"
		}
		fmt.Fprintf(w, "%s %s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", mark, s.Name, s.Role, s.State, s.Model, s.Tools, s.Turns,
			time.Since(s.Started).Round(time.Second), s.Memory)
	}
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// statusReply is the fleet at a glance: every agent, the emergency stop and memory.
func (a *Agent) statusReply() string {
	var b strings.Builder
	b.WriteString(a.agentsReply())
	estop := "released"
	if a.fleet.Stopped() {
		estop = "ENGAGED (/resume releases it)"
	}
	st := a.fleet.recall.Stats()
	fmt.Fprintf(&b, "\nemergency stop: %s\nmemory: %d records indexed (%d with vectors, %d waiting to be embedded); recall: %s",
		estop, st.Docs, st.Vectors, st.PendingEmbeds, a.fleet.recall.Mode())
	if st.LastError != "" {
		fmt.Fprintf(&b, "\nrecall's last error: %s", st.LastError)
	}
	return b.String()
}

func (a *Agent) agentsReply() string {
	var ss []Status
	for _, o := range a.fleet.agents {
		ss = append(ss, o.Status())
	}
	return formatStatus(ss, a.cfg.Name)
}

func (a *Agent) toolsReply() string {
	specs := a.tools.Specs()
	if len(specs) == 0 {
		return "no tools"
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "TOOL\tSOURCE\tEFFECT\tDESCRIPTION\n")
	for _, s := range specs {
		effect := string(s.Effect)
		if effect == "" {
			effect = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Name, s.Source, effect, s.Description)
	}
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

func (a *Agent) callCommand(ctx context.Context, rest string) string {
	name, args, _ := strings.Cut(rest, " ")
	if name == "" {
		return "usage: /call TOOL {json arguments}; /tools lists the tools"
	}
	raw, argErr := cleanArgs(args)
	if argErr != nil {
		return "error: " + argErr.Error()
	}
	out, err := a.invoke(ctx, name, raw, "operator")
	if err != nil {
		return "error: " + asToolError(err).Error()
	}
	return prettyJSON(out)
}

func (a *Agent) memoryCommand(ctx context.Context, rest string) string {
	a.settle()
	sub, arg, _ := strings.Cut(rest, " ")
	arg = strings.TrimSpace(arg)
	switch sub {
	case "recent", "":
		n := 10
		if arg != "" {
			v, err := strconv.Atoi(arg)
			if err != nil || v <= 0 {
				return fmt.Sprintf("error: /memory recent takes a positive count, got %q", arg)
			}
			n = v
		}
		recs, err := a.recent(ctx, n)
		if err != nil {
			return "error: " + err.Error()
		}
		return formatRecords(recs)
	case "search":
		if arg == "" {
			return "usage: /memory search TEXT"
		}
		hits, err := a.searchMemory(ctx, searchArgs{Query: arg, Limit: 10})
		if err != nil {
			return "error: " + err.Error()
		}
		return formatRecords(hits)
	case "get":
		r, err := a.mem.Get(ctx, arg)
		if err != nil {
			return "error: " + err.Error()
		}
		b, _ := json.MarshalIndent(r, "", "  ")
		return string(b)
	case "history":
		ns, key, _ := strings.Cut(arg, " ")
		if ns == "" || strings.TrimSpace(key) == "" {
			return "usage: /memory history NAMESPACE KEY (the versions of a fact, oldest first)"
		}
		recs, err := a.mem.History(ctx, ns, strings.TrimSpace(key))
		if err != nil {
			return "error: " + err.Error()
		}
		return formatFacts(recs)
	default:
		return fmt.Sprintf("unknown /memory subcommand %q; use recent, search, get or history", sub)
	}
}

// recent returns the newest records across the namespaces the agent may
// read: the scoped store merges its granted namespaces by Seq.
func (a *Agent) recent(ctx context.Context, n int) ([]memory.Record, error) {
	var out []memory.Record
	for r, err := range a.mem.Query(ctx, memory.Query{Limit: n}) {
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func formatRecords(recs []memory.Record) string {
	if len(recs) == 0 {
		return "no records"
	}
	var b strings.Builder
	for _, r := range recs {
		text := strings.ReplaceAll(r.Text, "\n", " ⏎ ")
		if len(text) > 160 {
			text = text[:157] + "..."
		}
		fmt.Fprintf(&b, "%s  %s  %-11s %-18s %s\n", r.ID, r.Time.UTC().Format(time.DateTime), r.Kind, r.Namespace, text)
	}
	return strings.TrimRight(b.String(), "\n")
}

// formatFacts lists a fact's versions with the time each was valid.
func formatFacts(recs []memory.Record) string {
	if len(recs) == 0 {
		return "no versions"
	}
	var b strings.Builder
	for _, r := range recs {
		until := "now"
		if !r.ValidTo.IsZero() {
			until = r.ValidTo.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(&b, "%s  valid %s → %s  %s\n", r.ID, r.Time.UTC().Format(time.DateTime), until, strings.ReplaceAll(r.Text, "\n", " "))
	}
	return strings.TrimRight(b.String(), "\n")
}

func (a *Agent) askCommand(ctx context.Context, rest string) string {
	name, text, _ := strings.Cut(rest, " ")
	if name == "" || strings.TrimSpace(text) == "" {
		return "usage: /ask AGENT TEXT"
	}
	other, err := a.fleet.Agent(name)
	if err != nil {
		return "error: " + err.Error()
	}
	reply, err := other.Ask(ctx, Input{Source: SourceAgent, From: a.cfg.Name, Text: text})
	if err != nil {
		return "error: " + err.Error()
	}
	return name + ": " + reply
}

func prettyJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
