package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// command is one operator command: it bypasses the model and the inbox,
// and answers with a structured result (Event.Data) that the edge formats
// (Event.Text is the terminal's rendering).
type command struct {
	name  string // without the slash
	usage string
	help  string
	// policyName is what the policy engine decides for (default name),
	// given the command's arguments.
	policyName func(args string) string
	run        func(ctx context.Context, a *Agent, c call) (data any, text string, err error)
}

// call is one invocation of a command.
type call struct {
	in   Input
	by   policy.Principal
	args string
}

// commandError is a command's failure with an event code.
type commandError struct {
	code string
	msg  string
}

func (e *commandError) Error() string { return e.msg }

func usageError(c *command) error {
	return &commandError{code: CodeInvalid, msg: "usage: " + c.usage}
}

// commandTable is every operator command, in the order /help lists them.
var commandTable []*command

func init() {
	commandTable = []*command{
		{name: "help", usage: "/help", help: "this list", run: helpCommand},
		{name: "status", usage: "/status", help: "every agent's state, the emergency stop, approvals and memory", run: statusCommand},
		{name: "tools", usage: "/tools", help: "the tools this agent can call", run: toolsCommand},
		{name: "call", usage: "/call TOOL {json}", help: "run a tool directly, e.g. /call clock {}", run: callCommand},
		{name: "memory", usage: "/memory recent [N] | search TEXT | get ID | history NS KEY", help: "read memory", run: memoryCommand},
		{name: "readings", usage: readingsUsage, help: "a sensor's readings over a time range, as plot columns (bounded); no sensor: the sensors", run: readingsCommand},
		{name: "audit", usage: "/audit [N]", help: "the newest audit records (depai audit verify checks the chain)", run: auditCommand},
		{name: "plugins", usage: "/plugins [list] | load|unload|reload|release NAME", help: "plugins and why one is not loaded; release lets a quarantined one load again (admins)", run: pluginsCommand,
			policyName: func(args string) string {
				if sub, _, _ := strings.Cut(args, " "); sub != "" && sub != "list" {
					return "plugins.manage"
				}
				return "plugins"
			}},
		{name: "agents", usage: "/agents", help: "every agent's state", run: agentsCommand},
		{name: "ask", usage: "/ask AGENT TEXT", help: "send TEXT to another agent and show its reply", run: askCommand},
		{name: "tasks", usage: "/tasks [AGENT] [STATE]", help: "the fleet's tasks, newest first (with the mesh on)", run: tasksCommand},
		{name: "approvals", usage: "/approvals", help: "actions waiting for an operator's approval", run: approvalsCommand},
		{name: "approve", usage: "/approve ID", help: "let a waiting action run", run: approveCommand},
		{name: "deny", usage: "/deny ID [REASON]", help: "refuse a waiting action", run: denyCommand},
		{name: "teleop", usage: "/teleop [ROBOT] on|off", help: "take (or give back) exclusive control of a robot: the model's moves are refused while you hold it", run: teleopCommand},
		{name: "reset", usage: "/reset", help: "start a new conversation with this agent", run: resetCommand},
		{name: "stop", usage: "/stop", help: "EMERGENCY STOP: cancel running turns, lock actuators and payments fleet-wide", run: stopCommand},
		{name: "resume", usage: "/resume", help: "release the emergency stop (admins)", run: resumeCommand},
		{name: "earnings", usage: "/earnings", help: "what this machine earned, paid out to its owners and holds", run: earningsCommand},
		{name: "identity", usage: "/identity", help: "this agent's on-chain identities (did:peaq, did:io) and whether they are registered", run: identityCommand},
	}
}

func lookupCommand(name string) *command {
	for _, c := range commandTable {
		if c.name == name {
			return c
		}
	}
	return nil
}

// command runs an operator command and returns its one event. It never
// calls the model and never waits for a turn.
func (a *Agent) command(ctx context.Context, in Input, text string) Event {
	name, args, _ := strings.Cut(strings.TrimPrefix(text, "/"), " ")
	args = strings.TrimSpace(args)
	c := lookupCommand(name)
	if c == nil {
		return Event{Type: EventError, Command: name, Code: CodeInvalid, Error: fmt.Sprintf("unknown command /%s; /help lists the commands", name)}
	}
	by := principalOf(in)
	pname := c.name
	if c.policyName != nil {
		pname = c.policyName(args)
	}
	done, err := a.fleet.policy.Authorize(ctx, policy.Action{Agent: a.cfg.Name, Principal: by, Kind: policy.ActionCommand, Name: pname, Args: commandArgs(args)})
	if err != nil {
		return Event{Type: EventError, Command: c.name, Code: deniedCode(err), Error: message(err)}
	}
	data, reply, err := c.run(ctx, a, call{in: in, by: by, args: args})
	var result json.RawMessage
	if err == nil && data != nil {
		if result, err = json.Marshal(data); err != nil {
			err = fmt.Errorf("encode the result of /%s: %w", c.name, err)
		}
	}
	done(nil, err)
	if err != nil {
		code := CodeInvalid
		var ce *commandError
		var we *wire.Error
		switch {
		case errors.As(err, &ce):
			code = ce.code
		case errors.As(err, &we) && (we.Code == wire.CodeDenied || we.Code == wire.CodeForbidden):
			return Event{Type: EventError, Command: c.name, Code: deniedCode(err), Error: we.Message}
		case errors.As(err, &we):
			code = CodeToolFailed
		}
		return Event{Type: EventError, Command: c.name, Code: code, Error: err.Error()}
	}
	return Event{Type: EventReply, Command: c.name, Text: reply, Data: result}
}

// deniedCode is the event code of a refusal: forbidden for the caller's
// role, denied for the action.
func deniedCode(err error) string {
	var we *wire.Error
	if errors.As(err, &we) && we.Code == wire.CodeForbidden {
		return CodeForbidden
	}
	return CodeDenied
}

// message is an error's text without the code a wire error leads with,
// for an event that carries the code itself.
func message(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Message
	}
	return err.Error()
}

// commandArgs keeps a command's arguments in its audit record as JSON.
func commandArgs(args string) json.RawMessage {
	if args == "" {
		return nil
	}
	b, _ := json.Marshal(map[string]string{"args": args})
	return b
}

func helpCommand(context.Context, *Agent, call) (any, string, error) {
	var b strings.Builder
	b.WriteString("Operator commands (they bypass the model and work without one):\n")
	for _, c := range commandTable {
		fmt.Fprintf(&b, "  %-28s %s\n", c.usage, c.help)
	}
	b.WriteString("Anything else is a message to the agent's model.")
	return nil, b.String(), nil
}

// StatusReport is what /status answers.
type StatusReport struct {
	Agents    []Status      `json:"agents"`
	EStop     policy.EStop  `json:"estop"`
	Approvals int           `json:"approvals"`
	Recall    RecallStatus  `json:"recall"`
	Plugins   []PluginInfo  `json:"plugins"`
	Audit     AuditHeadInfo `json:"audit"`
}

// RecallStatus is the recall index as /status reports it.
type RecallStatus struct {
	Ready         bool    `json:"ready"`
	Phase         string  `json:"phase"` // loading, rebuilding, catching up, ready, unavailable
	Progress      float64 `json:"progress"`
	Mode          string  `json:"mode"`
	Docs          int     `json:"docs"`
	Vectors       int     `json:"vectors"`
	PendingEmbeds int     `json:"pending_embeds"`
	LastError     string  `json:"last_error,omitempty"`
}

// AuditHeadInfo is the head of the audit chain.
type AuditHeadInfo struct {
	Entries uint64 `json:"entries"`
	Head    string `json:"head"`
}

func (a *Agent) fleetStatus() []Status {
	ss := make([]Status, 0, len(a.fleet.agents))
	for _, o := range a.fleet.agents {
		ss = append(ss, o.Status())
	}
	return ss
}

func statusCommand(_ context.Context, a *Agent, _ call) (any, string, error) {
	st := a.fleet.recall.Stats()
	n, head := a.fleet.audit.Head()
	r := StatusReport{
		Agents: a.fleetStatus(), EStop: a.fleet.policy.EStop(), Approvals: len(a.fleet.policy.Approvals()),
		Recall:  RecallStatus{Ready: st.Ready, Phase: st.Phase, Progress: st.Progress, Mode: a.fleet.recall.Mode(), Docs: st.Docs, Vectors: st.Vectors, PendingEmbeds: st.PendingEmbeds, LastError: st.LastError},
		Plugins: a.plugins.list(), Audit: AuditHeadInfo{Entries: n, Head: head},
	}
	return r, formatStatusReport(r, a.cfg.Name), nil
}

func agentsCommand(ctx context.Context, a *Agent, _ call) (any, string, error) {
	if a.fleet.mesh != nil {
		ss, err := a.fleetAgents(ctx)
		return ss, formatFleet(ss, a.cfg.Name), err
	}
	ss := a.fleetStatus()
	return ss, formatStatus(ss, a.cfg.Name), nil
}

// ToolsReport is what /tools answers: the tools so far, and the plugins
// whose tools are still to come.
type ToolsReport struct {
	Tools   []tool.Spec `json:"tools"`
	Loading []string    `json:"loading,omitempty"`
}

func toolsCommand(_ context.Context, a *Agent, _ call) (any, string, error) {
	specs := a.tools.Specs()
	for i := range specs {
		specs[i].Effect = a.fleet.policy.EffectOf(a.cfg.Name, specs[i].Name, specs[i].Effect)
	}
	r := ToolsReport{Tools: specs}
	for _, p := range a.plugins.list() {
		if p.State == "loading" {
			r.Loading = append(r.Loading, p.Name)
		}
	}
	text := formatTools(specs)
	if len(r.Loading) > 0 {
		text += fmt.Sprintf("\n(still loading: %s — their tools follow; the first start builds plugins from source, which can take a minute)", strings.Join(r.Loading, ", "))
	}
	return r, text, nil
}

func callCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	name, args, _ := strings.Cut(c.args, " ")
	if name == "" {
		return nil, "", &commandError{code: CodeInvalid, msg: "usage: /call TOOL {json arguments}; /tools lists the tools"}
	}
	if err := a.plugins.wait(ctx); err != nil {
		return nil, "", &commandError{code: CodeUnavailable, msg: err.Error()}
	}
	raw, argErr := cleanArgs(args)
	if argErr != nil {
		return nil, "", argErr
	}
	out, err := a.invoke(ctx, name, raw, c.by)
	if err != nil {
		return nil, "", asToolError(err)
	}
	return out, prettyJSON(out), nil
}

func memoryCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	sub, arg, _ := strings.Cut(c.args, " ")
	arg = strings.TrimSpace(arg)
	switch sub {
	case "recent", "":
		n := 10
		if arg != "" {
			v, err := strconv.Atoi(arg)
			if err != nil || v <= 0 {
				return nil, "", &commandError{code: CodeInvalid, msg: fmt.Sprintf("/memory recent takes a positive count, got %q", arg)}
			}
			n = v
		}
		recs, err := a.recent(ctx, n)
		if err != nil {
			return nil, "", err
		}
		return recs, formatRecords(recs), nil
	case "search":
		if arg == "" {
			return nil, "", &commandError{code: CodeInvalid, msg: "usage: /memory search TEXT"}
		}
		hits, err := a.searchMemory(ctx, searchArgs{Query: arg, Limit: 10})
		if err != nil {
			return nil, "", err
		}
		return hits, formatRecords(hits), nil
	case "get":
		r, err := a.mem.Get(ctx, arg)
		if err != nil {
			return nil, "", err
		}
		b, _ := json.MarshalIndent(r, "", "  ")
		return r, string(b), nil
	case "history":
		ns, key, _ := strings.Cut(arg, " ")
		if ns == "" || strings.TrimSpace(key) == "" {
			return nil, "", &commandError{code: CodeInvalid, msg: "usage: /memory history NAMESPACE KEY (the versions of a fact, oldest first)"}
		}
		recs, err := a.mem.History(ctx, ns, strings.TrimSpace(key))
		if err != nil {
			return nil, "", err
		}
		return recs, formatFacts(recs), nil
	}
	return nil, "", &commandError{code: CodeInvalid, msg: fmt.Sprintf("unknown /memory subcommand %q; use recent, search, get or history", sub)}
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

func auditCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	n := 20
	if c.args != "" {
		v, err := strconv.Atoi(c.args)
		if err != nil || v <= 0 {
			return nil, "", &commandError{code: CodeInvalid, msg: fmt.Sprintf("/audit takes a positive count, got %q", c.args)}
		}
		n = v
	}
	var recs []memory.Record
	for r, err := range a.fleet.store.Query(ctx, memory.Query{Namespace: policy.AuditNamespace, Kinds: []memory.Kind{memory.KindAudit}, Limit: n}) {
		if err != nil {
			return nil, "", err
		}
		recs = append(recs, r)
	}
	return recs, formatRecords(recs), nil
}

func pluginsCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	sub, name, _ := strings.Cut(c.args, " ")
	name = strings.TrimSpace(name)
	if sub == "" || sub == "list" {
		ps := a.plugins.list()
		return ps, formatPlugins(ps), nil
	}
	if name == "" {
		return nil, "", &commandError{code: CodeInvalid, msg: fmt.Sprintf("usage: /plugins %s NAME", sub)}
	}
	msg, err := a.plugins.manage(ctx, sub, name)
	if err != nil {
		return nil, "", err
	}
	return map[string]string{"result": msg}, msg, nil
}

func askCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	name, text, _ := strings.Cut(c.args, " ")
	if name == "" || strings.TrimSpace(text) == "" {
		return nil, "", &commandError{code: CodeInvalid, msg: "usage: /ask AGENT TEXT"}
	}
	other, err := a.fleet.Agent(name)
	if err != nil && a.fleet.mesh != nil {
		return a.askOverMesh(ctx, name, text)
	}
	if err != nil {
		return nil, "", &commandError{code: CodeInvalid, msg: err.Error()}
	}
	depth, _ := depthFrom(ctx)
	reply, err := other.Ask(ctx, Input{Source: SourceAgent, From: a.cfg.Name, Text: text, Depth: depth + 1})
	if err != nil {
		var te *TurnError
		if errors.As(err, &te) {
			return nil, "", &commandError{code: te.Code, msg: name + ": " + te.Message}
		}
		return nil, "", err
	}
	return map[string]string{"agent": name, "reply": reply}, name + ": " + reply, nil
}

func approvalsCommand(_ context.Context, a *Agent, _ call) (any, string, error) {
	ps := a.fleet.policy.Approvals()
	return ps, formatApprovals(ps), nil
}

func approveCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	if c.args == "" {
		return nil, "", usageError(lookupCommand("approve"))
	}
	if err := a.fleet.policy.Approve(ctx, c.args, c.by); err != nil {
		return nil, "", err
	}
	return map[string]string{"approved": c.args}, "approved " + c.args, nil
}

func denyCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	id, reason, _ := strings.Cut(c.args, " ")
	if id == "" {
		return nil, "", usageError(lookupCommand("deny"))
	}
	if err := a.fleet.policy.DenyApproval(ctx, id, c.by, strings.TrimSpace(reason)); err != nil {
		return nil, "", err
	}
	return map[string]string{"denied": id}, "denied " + id, nil
}

func teleopCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	robot, mode := a.cfg.Name, c.args
	if name, rest, ok := strings.Cut(c.args, " "); ok {
		robot, mode = name, strings.TrimSpace(rest)
	}
	if mode != "on" && mode != "off" {
		return nil, "", usageError(lookupCommand("teleop"))
	}
	if _, err := a.fleet.Agent(robot); err != nil {
		return nil, "", &commandError{code: CodeInvalid, msg: err.Error()}
	}
	if err := a.fleet.policy.Teleop(ctx, robot, c.by, mode == "on"); err != nil {
		return nil, "", err
	}
	if mode == "on" {
		return map[string]string{"robot": robot, "teleop": c.by.ID}, fmt.Sprintf("You (%s) hold teleop control of %s: its model's actuator calls are refused until /teleop %s off; your own still pass the hard limits.", c.by.ID, robot, robot), nil
	}
	return map[string]string{"robot": robot, "teleop": ""}, fmt.Sprintf("Teleop control of %s released.", robot), nil
}

func resetCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	if err := a.reset(ctx, c.by.String()); err != nil {
		return nil, "", err
	}
	return map[string]bool{"reset": true}, "A new conversation starts: earlier turns are kept in memory but no longer sent to the model.", nil
}

func stopCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	n := 0
	for _, o := range a.fleet.agents {
		n += o.running()
	}
	err := a.fleet.policy.Stop(ctx, c.by, "/stop by "+c.by.String())
	text := fmt.Sprintf("EMERGENCY STOP engaged: %d running turn(s) cancelled; actuators and payments are locked fleet-wide until an admin's /resume.", n)
	if err != nil {
		// The stop holds in this process; say what did not work.
		text += "\nwarning: " + err.Error()
	}
	return map[string]any{"engaged": true, "cancelled": n}, text, nil
}

func resumeCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	if err := a.fleet.policy.Resume(ctx, c.by); err != nil {
		return nil, "", err
	}
	return map[string]bool{"engaged": false}, "Emergency stop released: actuators and payments are unlocked.", nil
}
