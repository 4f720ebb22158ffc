package tool

import "context"

// Stopper is a tool with a stop handler: an in-process actuator (a program
// embedding depai drives its own motors) whose machine the emergency stop
// must reach, not only refuse new calls to. The fleet calls Stop on /stop
// and at shutdown, at once for every such tool and alongside the plugins'
// stop handlers, and audits each answer.
//
// Stop brings the machine to rest, or starts doing so, and returns within
// ctx's deadline: it must not wait for a Call in flight (that call's
// context is cancelled too). A nil error acknowledges the stop; an error
// or a missed deadline is on record and the tool is dropped from its
// agent, so that nothing calls a machine that may still be moving.
type Stopper interface {
	Stop(ctx context.Context) error
}
