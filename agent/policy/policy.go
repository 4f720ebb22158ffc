// Package policy is depai's one policy engine: it sits between every caller
// (the model, an operator, a schedule, another agent, a plugin's host call)
// and every side effect, and decides in code — never in a prompt — whether
// the action may happen: allow, deny with a reason, or wait for an
// operator's approval.
//
// The agent config is authoritative. A tool that a safety rule names is
// gated as that rule says whatever its plugin's manifest claims; an action
// whose gated fields cannot be read is denied (fail closed). The emergency
// stop locks every actuator and payment fleet-wide, survives a restart, and
// depends on nothing but this process.
//
// Every decision is written to the one audit log (see Log) before the
// action runs, and its outcome after: nobody but this package writes
// records of kind audit, and the records are hash-chained so that an edit or
// a deletion is detectable (Verify).
package policy

import (
	"context"
	"encoding/json"

	"github.com/depai/depai/sdk/wire"
)

// Role is what an operator may do. Roles are ordered: each includes the
// ones before it.
type Role string

// Roles.
const (
	RoleViewer   Role = "viewer"   // reads status, tools, memory and the audit log; may engage the e-stop
	RoleOperator Role = "operator" // also talks to agents, calls tools, approves and denies, takes teleop
	RoleAdmin    Role = "admin"    // also releases the e-stop and manages plugins
)

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the roles above.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r includes min.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() && r.rank() > 0 }

// PrincipalKind says what kind of caller acts.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalModel    PrincipalKind = "model"    // the agent's model, in a turn
	PrincipalOperator PrincipalKind = "operator" // a person, by a token
	PrincipalSchedule PrincipalKind = "schedule" // a configured schedule
	PrincipalAgent    PrincipalKind = "agent"    // another agent
	PrincipalPlugin   PrincipalKind = "plugin"   // a plugin's host call
	PrincipalSystem   PrincipalKind = "system"   // depai itself (shutdown, a crash handler)
)

// Principal is who asks for an action.
type Principal struct {
	Kind PrincipalKind `json:"kind"`
	ID   string        `json:"id,omitempty"`   // operator name, agent name, plugin name
	Role Role          `json:"role,omitempty"` // an operator's role
}

func (p Principal) String() string {
	if p.ID == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + ":" + p.ID
}

// ActionKind says what an action is.
type ActionKind string

// Action kinds.
const (
	ActionTool    ActionKind = "tool"    // a tool call: built-in, plugin or in-process
	ActionHost    ActionKind = "host"    // a plugin's host call (memory, http, emit, pay)
	ActionCommand ActionKind = "command" // an operator command
	ActionMessage ActionKind = "message" // an input that may start a turn (depth-checked)
)

// Action is one thing a principal asks to do.
type Action struct {
	Agent     string          `json:"agent"` // on whose behalf
	Principal Principal       `json:"principal"`
	Kind      ActionKind      `json:"kind"`
	Name      string          `json:"name"`             // tool name, host method, command (without "/")
	Effect    wire.Effect     `json:"effect,omitempty"` // as the tool's provider declares it; rules override
	Target    string          `json:"target,omitempty"` // namespace, host, topic, payee, agent
	Args      json.RawMessage `json:"args,omitempty"`
	Depth     int             `json:"depth,omitempty"` // how many wakes or agent messages led here
}

// Verdict is the outcome of a decision.
type Verdict string

// Verdicts.
const (
	Allow         Verdict = "allow"
	Deny          Verdict = "deny"
	NeedsApproval Verdict = "needs_approval"
)

// Decision is what the engine decided about an action and why.
type Decision struct {
	Verdict Verdict     `json:"decision"`
	Reason  string      `json:"reason,omitempty"`
	Rule    string      `json:"rule,omitempty"`   // the config rule that decided, e.g. "safety.actuators[drive.to].keep_out[dock]"
	Effect  wire.Effect `json:"effect,omitempty"` // the effect the engine enforced (config over manifest)
}

// Gate is what every caller of a side effect goes through.
type Gate interface {
	// Authorize decides a, writes the decision to the audit log and, when an
	// operator must approve, waits until one does, denies, or the approval
	// times out. A nil error means the action may run now; the caller then
	// reports its outcome with done, exactly once. A refused action returns
	// a *wire.Error with code denied whose message gives the reason.
	Authorize(ctx context.Context, a Action) (done func(result json.RawMessage, err error), err error)
}
