package process

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

var _ host.UrgentInstance = (*instance)(nil)

// CallUrgent runs a call without waiting for one of the plugin's call
// slots: the host's stops and heartbeats must get through while long tool
// calls occupy them all. It still waits for a live process.
func (in *instance) CallUrgent(ctx context.Context, call wire.Call) wire.Result {
	ctx, cancel := in.deadlines.With(ctx, time.Now().Add(in.limits.CallTimeout))
	defer cancel()
	if n := len(call.Payload); n > in.limits.MaxMessageBytes {
		return result(wire.CodeTooLarge, false, "%s: payload of %d bytes exceeds plugin %q's limit of %d", call.Method, n, in.spec.Name, in.limits.MaxMessageBytes)
	}
	p, werr := in.live(ctx)
	if werr != nil {
		return wire.Result{Error: werr}
	}
	return in.callProc(ctx, p, call)
}

// stopRestarted stops the actuators of a freshly restarted process before
// any other call reaches it: the device may still be moving on what the
// crashed process last told it, and the new process knows nothing of that.
func (in *instance) stopRestarted(p *proc, m wire.Manifest) {
	if !m.Actuation.Stop {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), host.DefaultStopTimeout)
	defer cancel()
	payload, _ := json.Marshal(wire.StopArgs{Reason: wire.StopRestart})
	res := in.callProc(ctx, p, wire.Call{Method: wire.MethodStop, Payload: payload, CallID: "restart-stop"})
	if res.Error != nil {
		in.log.Error("restarted actuator plugin did not acknowledge its stop", "err", fmt.Sprint(res.Error))
		return
	}
	in.log.Info("restarted actuator plugin stopped its actuators")
}
