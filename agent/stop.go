package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/sdk/wire"
)

// toolStop is what one in-process tool answered to a stop.
type toolStop struct {
	tool  string
	acked bool
	took  time.Duration
	err   *wire.Error
}

// stoppers are the agent's in-process tools with a stop handler, and the
// actuators without one, which the stop cannot reach (reported, not
// called).
func (a *Agent) stoppers() (with []tool.Tool, without []string) {
	for _, t := range a.fleet.opts.Tools[a.cfg.Name] {
		if _, ok := t.(tool.Stopper); ok {
			with = append(with, t)
			continue
		}
		s := t.Spec()
		if a.fleet.policy.EffectOf(a.cfg.Name, s.Name, s.Effect) == tool.EffectActuator {
			without = append(without, s.Name)
		}
	}
	return with, without
}

// stopTools calls every in-process stop handler of the agent at once and
// waits for their answers until ctx's deadline (host.DefaultStopTimeout when
// it has none): the same bound a plugin's stop has. A tool that fails or
// does not answer in time is removed from the agent's tools.
func (a *Agent) stopTools(ctx context.Context) []toolStop {
	with, without := a.stoppers()
	if len(with)+len(without) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, host.DefaultStopTimeout)
		defer cancel()
	}
	out := make([]toolStop, len(with), len(with)+len(without))
	var wg sync.WaitGroup
	for i, t := range with {
		wg.Go(func() { out[i] = stopOne(ctx, t) })
	}
	wg.Wait()
	for _, r := range out {
		if !r.acked {
			a.tools.Remove(r.tool)
		}
	}
	for _, name := range without {
		out = append(out, toolStop{tool: name, err: wire.Errorf(wire.CodeNotFound, "in-process actuator %q has no stop handler (tool.Stopper)", name)})
	}
	return out
}

// stopOne runs one stop handler; a handler that does not return by ctx's
// deadline is not waited for longer (it goes on in its goroutine).
func stopOne(ctx context.Context, t tool.Tool) toolStop {
	r := toolStop{tool: t.Spec().Name}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- t.(tool.Stopper).Stop(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("no answer within the stop deadline: %w", ctx.Err())
	}
	r.took = time.Since(start)
	if err != nil {
		r.err = asToolError(err)
		return r
	}
	r.acked = true
	return r
}

// recordToolStops puts each in-process tool's answer to a stop on record,
// in the shape a plugin's answer has (actuator.stop), and logs those that
// did not acknowledge.
func (f *Fleet) recordToolStops(ctx context.Context, a *Agent, why string, rs []toolStop) {
	for _, r := range rs {
		e := policy.Entry{Agent: a.Name(), Principal: policy.Principal{Kind: policy.PrincipalSystem}, Kind: policy.ActionHost,
			Action: "actuator.stop", Target: "tool:" + r.tool, Phase: policy.PhaseOutcome, Error: r.err,
			Reason: fmt.Sprintf("%s: acknowledged=%v in %v", why, r.acked, r.took.Round(time.Microsecond))}
		if !r.acked && r.err != nil && r.err.Code != wire.CodeNotFound {
			e.Reason += "; removed from the agent's tools"
		}
		if _, err := f.audit.Write(context.WithoutCancel(ctx), e); err != nil {
			f.log.Error("audit: actuator stop not recorded", "tool", r.tool, "err", err)
		}
		if !r.acked {
			f.log.Error("in-process actuator did not acknowledge the stop", "agent", a.Name(), "tool", r.tool, "err", r.err)
		}
	}
}

// stopToolsForClose stops every agent's in-process actuators at shutdown.
func (f *Fleet) stopToolsForClose(ctx context.Context) {
	if f.audit == nil {
		return // Open failed before any agent existed
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), host.DefaultStopTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, a := range f.agents {
		wg.Go(func() { f.recordToolStops(sctx, a, wire.StopShutdown, a.stopTools(sctx)) })
	}
	wg.Wait()
}
