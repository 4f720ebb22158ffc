//go:build !wasip1

package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/depai/depai/sdk"
)

// native registers what only a native process can try.
func native() {
	sdk.Tool("hostile.killparent", "Sends SIGKILL to its parent process.", func(context.Context, struct{}) (Out, error) {
		return result("sent", syscall.Kill(os.Getppid(), syscall.SIGKILL))
	})
	sdk.Tool("hostile.kill", "Sends SIGKILL to process N.", func(_ context.Context, in N) (Out, error) {
		return result("sent", syscall.Kill(in.N, syscall.SIGKILL))
	})
	sdk.Tool("hostile.spawn", "Starts a child that sleeps for a minute and returns its pid.", func(context.Context, struct{}) (Out, error) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = []string{"HOSTILE_SLEEP=1"}
		if err := cmd.Start(); err != nil {
			return result("", err)
		}
		go cmd.Wait()
		return Out{Value: strconv.Itoa(cmd.Process.Pid), Count: cmd.Process.Pid}, nil
	})
	sdk.Tool("hostile.pid", "Returns its pid as the host sees it.", func(context.Context, struct{}) (Out, error) {
		return Out{Count: os.Getpid()}, nil
	})
}
