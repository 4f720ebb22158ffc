package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
)

// invoke is the one path from a caller (the model, /call, a schedule) to a
// tool. The safety gate sits here, in code, before any implementation sees
// the call: with the emergency stop engaged, actuator and payment tools are
// refused, and actuator calls pass their configured gates (rate, speed,
// keep-out zones). Every call with a side effect leaves an audit record.
func (a *Agent) invoke(ctx context.Context, name string, args json.RawMessage, caller string) (json.RawMessage, error) {
	t, ok := a.tools.Get(name)
	if !ok {
		return a.tools.Call(ctx, name, args) // the set explains the unknown name
	}
	spec := t.Spec()
	gated := spec.Effect == tool.EffectActuator || spec.Effect == tool.EffectPayment
	if gated && a.fleet.Stopped() {
		err := &tool.Error{Code: tool.CodeDenied, Message: fmt.Sprintf("%s is an %s tool and the emergency stop is engaged; an operator must /resume first", name, spec.Effect)}
		a.audit(ctx, "tool.denied", name, caller, args, nil, err)
		return nil, err
	}
	if g := a.gates[name]; g != nil && spec.Effect == tool.EffectActuator {
		if err := g.check(args, time.Now()); err != nil {
			a.audit(ctx, "tool.denied", name, caller, args, nil, err)
			return nil, err
		}
	}
	out, err := a.tools.Call(ctx, name, args)
	if spec.Effect != tool.EffectNone {
		a.audit(ctx, "tool.call", name, caller, args, out, asToolError(err))
	}
	return out, err
}

type auditNote struct {
	Action string          `json:"action"`
	Target string          `json:"target,omitempty"`
	Caller string          `json:"caller,omitempty"`
	Args   json.RawMessage `json:"args,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *tool.Error     `json:"error,omitempty"`
}

// audit records a safety-relevant decision. Losing an audit record must not
// block the action that is already decided, so a failure is logged loudly.
func (a *Agent) audit(ctx context.Context, action, target, caller string, args, result json.RawMessage, terr *tool.Error) {
	data, err := json.Marshal(auditNote{Action: action, Target: target, Caller: caller, Args: args, Result: result, Error: terr})
	if err == nil {
		_, err = a.mem.Put(context.WithoutCancel(ctx), memory.Record{
			Namespace: a.ns, Kind: memory.KindAudit, Author: a.cfg.Name,
			Text: action + " " + target, Data: data, Tags: []string{"action:" + action},
		})
	}
	if err != nil {
		a.log.Error("audit record lost", "action", action, "target", target, "err", err)
	}
}

// engageStop is the emergency stop: it locks actuators and payments fleet
// wide and cancels every running turn. It depends on nothing but this
// process — not the model, not a plugin, not the network.
func (f *Fleet) engageStop() (cancelled int) {
	f.estop.Store(true)
	for _, a := range f.agents {
		cancelled += a.cancelTurns()
	}
	return cancelled
}
