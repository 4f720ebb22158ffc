// Command crashloop is a process plugin that crashes soon after every start
// while its config says crash: "yes" — a driver that keeps dying, which
// the host must quarantine and keep quarantined across a restart.
package main

import (
	"context"
	"os"
	"time"

	"github.com/depai/depai/sdk"
)

func init() {
	sdk.Plugin("crashloop", "0.0.1")
	sdk.Tool("crashloop.ping", "Answers pong.", func(context.Context, struct{}) (string, error) { return "pong", nil })
	sdk.Run(func(ctx context.Context) error {
		if v, err := sdk.Config(ctx, "crash"); err == nil && v == "yes" {
			time.Sleep(50 * time.Millisecond)
			os.Exit(3)
		}
		<-ctx.Done()
		return nil
	})
}

func main() { sdk.Main() }
