package host

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/sdk/schema"
	"github.com/depai/depai/sdk/wire"
)

// pluginTool is one plugin tool as the agent sees it.
type pluginTool struct {
	p        *Plugin
	spec     tool.Spec
	declared string // the name in the manifest: the method the plugin is called with
	in, out  *schema.Schema
}

// ToolName is the name the host gives a tool a plugin declares as declared.
// A plugin loaded under its manifest's name keeps the names it declares.
// Loaded under another name — the same artifact twice, say, as "weather"
// and "weather-eu" — its tools are qualified by that configured name: the
// manifest-name prefix of "weather.now" is replaced ("weather-eu.now"), and
// a name without that prefix gets the configured name in front
// ("weather-eu.forecast" for "forecast"). The rule depends on nothing but
// the two names, not on what else is loaded or in which order, so a tool's
// name is the same on every start.
func ToolName(configured, manifest, declared string) string {
	if configured == manifest {
		return declared
	}
	if rest, ok := strings.CutPrefix(declared, manifest+"."); ok && manifest != "" {
		return configured + "." + rest
	}
	return configured + "." + declared
}

var _ tool.Tool = (*pluginTool)(nil)

var callSeq atomic.Uint64

// newPluginTool builds a tool from a definition CheckManifest accepted.
func newPluginTool(p *Plugin, d wire.ToolDef) (*pluginTool, error) {
	in, err := schema.Parse(rawOr(d.Input, `{"type":"object"}`))
	if err != nil {
		return nil, fmt.Errorf("tool %s: input schema: %w", d.Name, err)
	}
	t := &pluginTool{p: p, in: in, declared: d.Name, spec: tool.Spec{
		Name: ToolName(p.spec.Name, p.manifest.Name, d.Name), Description: d.Description, InputSchema: in.JSON(),
		OutputSchema: d.Output, Effect: d.Effect, Source: p.spec.Name,
	}}
	if len(d.Output) > 0 {
		if t.out, err = schema.Parse(d.Output); err != nil {
			return nil, fmt.Errorf("tool %s: output schema: %w", d.Name, err)
		}
	}
	return t, nil
}

func (t *pluginTool) Spec() tool.Spec { return t.spec }

// Call validates args, runs the call in the plugin and checks the result
// against the output schema. Failures are *tool.Error values.
func (t *pluginTool) Call(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	if err := t.in.Validate(args); err != nil {
		return nil, &tool.Error{Code: tool.CodeInvalidArgument, Message: fmt.Sprintf("arguments for %s %v; expected schema %s", t.spec.Name, err, t.in.JSON())}
	}
	c := newCall(ctx, t.declared, args)
	c.Checked = true
	start := time.Now()
	res := t.p.inst.Call(ctx, c)
	t.p.observe(CallTool, start, res)
	if res.Error != nil {
		return nil, res.Error
	}
	if t.out != nil {
		if err := t.out.Validate(res.Payload); err != nil {
			return nil, &tool.Error{Code: tool.CodeInternal, Message: fmt.Sprintf("plugin %q: %s returned a result that %v", t.p.spec.Name, t.spec.Name, err)}
		}
	}
	return res.Payload, nil
}

func newCall(ctx context.Context, method string, payload json.RawMessage) wire.Call {
	c := wire.Call{Method: method, Payload: payload, CallID: strconv.FormatUint(callSeq.Add(1), 10)}
	if d, ok := ctx.Deadline(); ok {
		c.Deadline = d.UnixNano()
	}
	return c
}

// MaxSensorBackoff caps the wait between polls of a failing sensor.
const MaxSensorBackoff = 5 * time.Minute

// poll starts polling p's sensors that have an interval, if the host has a
// reading callback. Called with h.mu held.
//
// Each sensor has one poller: polls never overlap, and the next starts an
// interval after the last one ended. A poll is bounded by the call timeout
// and by ten intervals, whichever is less, and a failure (a timeout
// included) doubles the wait before the next poll, up to MaxSensorBackoff —
// so a sensor that fails or spins costs a bounded, shrinking share of a
// core and of the log, instead of all of them for ever.
func (h *Host) poll(p *Plugin) {
	if h.cfg.OnReading == nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	for _, s := range p.manifest.Sensors {
		every, err := time.ParseDuration(s.Interval)
		if err != nil || s.Interval == "" {
			continue // pushed by emit only; check() vetted the rest
		}
		timeout := min(p.spec.Limits.OrDefault().CallTimeout, 10*every)
		p.polling.Go(func() {
			wait := every
			t := time.NewTimer(wait)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				cctx, cancel := context.WithTimeout(ctx, timeout)
				start := time.Now()
				res := p.inst.Call(cctx, newCall(cctx, s.Name, nil))
				cancel()
				p.observe(CallSensor, start, res)
				if ctx.Err() != nil {
					return
				}
				if res.Error != nil {
					wait = min(2*wait, MaxSensorBackoff)
					h.cfg.OnReading(p.spec.Name, s.Name, nil, res.Error)
				} else {
					wait = every
					h.cfg.OnReading(p.spec.Name, s.Name, res.Payload, nil)
				}
				t.Reset(wait)
			}
		})
	}
}
