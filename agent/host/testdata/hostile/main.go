// Command hostile is the attacker of the containment tests: each tool tries
// one thing a plugin must not be able to do (read the agent's files and
// environment, reach a port it was not granted, signal its agent, outgrow
// its memory limit, leave children or a spinning goroutine behind, flood the
// host), or reports what the sandbox gave it (randomness, the clock). The
// same source builds to both transports; the tests build it with
// agent/host/build and assert, per transport, what the host let happen.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/depai/depai/sdk"
)

// Path names a file.
type Path struct {
	Path string `json:"path"`
}

// Addr is a TCP address, host:port.
type Addr struct {
	Addr string `json:"addr"`
}

// N is a count or a size.
type N struct {
	N int `json:"n"`
}

// Out is every tool's result: what happened, or the error it met.
type Out struct {
	Value string `json:"value,omitempty"`
	Err   string `json:"err,omitempty"`
	Code  string `json:"code,omitempty"`
	Count int    `json:"count,omitempty"`
}

func result(v string, err error) (Out, error) {
	if err != nil {
		return Out{Err: err.Error()}, nil
	}
	return Out{Value: v}, nil
}

func init() {
	sdk.Plugin("hostile", "0.1.0")
	sdk.Tool("hostile.read", "Reads a file.", func(_ context.Context, in Path) (Out, error) {
		b, err := os.ReadFile(in.Path)
		return result(string(b), err)
	})
	sdk.Tool("hostile.write", "Writes a file.", func(_ context.Context, in Path) (Out, error) {
		return result("written", os.WriteFile(in.Path, []byte("hostile"), 0o600))
	})
	sdk.Tool("hostile.env", "Returns the environment.", func(context.Context, struct{}) (Out, error) {
		return Out{Value: strings.Join(os.Environ(), "\n"), Count: len(os.Environ())}, nil
	})
	sdk.Tool("hostile.cwd", "Returns the working directory.", func(context.Context, struct{}) (Out, error) {
		return result(os.Getwd())
	})
	sdk.Tool("hostile.dial", "Opens a raw TCP connection.", func(_ context.Context, in Addr) (Out, error) {
		c, err := net.DialTimeout("tcp", in.Addr, 2*time.Second)
		if err != nil {
			return result("", err)
		}
		c.Close()
		return result("connected", nil)
	})
	sdk.Tool("hostile.udp", "Sends a UDP datagram.", func(_ context.Context, in Addr) (Out, error) {
		c, err := net.Dial("udp", in.Addr)
		if err != nil {
			return result("", err)
		}
		defer c.Close()
		_, err = c.Write([]byte("hostile"))
		return result("sent", err)
	})
	sdk.Tool("hostile.alloc", "Allocates and touches N MiB.", func(_ context.Context, in N) (Out, error) {
		b := make([]byte, in.N<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		return Out{Count: len(b) >> 20}, nil
	})
	sdk.Tool("hostile.rand", "Returns 16 bytes from crypto/rand.", func(context.Context, struct{}) (Out, error) {
		b := make([]byte, 16)
		_, err := rand.Read(b)
		return result(hex.EncodeToString(b), err)
	})
	sdk.Tool("hostile.emit", "Emits N events on topic t and counts the errors.", func(ctx context.Context, in N) (Out, error) {
		out := Out{}
		for i := range in.N {
			if err := sdk.Emit(ctx, "t", i); err != nil {
				out.Count++
				out.Err = err.Error()
			}
		}
		return out, nil
	})
	sdk.Tool("hostile.log", "Logs N lines of 1 KiB.", func(ctx context.Context, in N) (Out, error) {
		line := strings.Repeat("x", 1024)
		for range in.N {
			sdk.Log(ctx, slog.LevelInfo, line)
		}
		return Out{Count: in.N}, nil
	})
	sdk.Tool("hostile.stdout", "Prints N lines of 1 KiB.", func(_ context.Context, in N) (Out, error) {
		line := strings.Repeat("y", 1024)
		for range in.N {
			fmt.Println(line)
		}
		return Out{Count: in.N}, nil
	})
	sdk.Tool("hostile.denied", "Asks N times for a secret it was not granted.", func(ctx context.Context, in N) (Out, error) {
		out := Out{}
		for range in.N {
			if _, err := sdk.Secret(ctx, "operator_token"); err != nil {
				out.Count++
				out.Err = err.Error()
			}
		}
		return out, nil
	})
	sdk.Tool("hostile.big", "Returns N MiB.", func(_ context.Context, in N) (Out, error) {
		return Out{Value: strings.Repeat("z", in.N<<20)}, nil
	})
	sdk.Tool("hostile.fetch", "Fetches a URL and reports the error code it met.", func(ctx context.Context, in Path) (Out, error) {
		resp, err := sdk.HTTPFetch(ctx, sdk.Request{URL: in.Path})
		if err != nil {
			out := Out{Err: err.Error()}
			if we, ok := err.(interface{ Error() string }); ok {
				out.Code, _, _ = strings.Cut(we.Error(), ":")
			}
			return out, nil
		}
		return Out{Value: string(resp.Body)}, nil
	})
	sdk.Tool("hostile.panic", "Panics.", func(context.Context, struct{}) (Out, error) {
		panic("hostile panic")
	})
	sdk.Tool("hostile.spin", "Returns, leaving a goroutine burning CPU.", func(context.Context, struct{}) (Out, error) {
		go func() {
			for {
			}
		}()
		return Out{Value: "spinning"}, nil
	})
	sdk.Sensor("hostile.fail", "A sensor that always fails.", 10*time.Millisecond, func(context.Context) (Out, error) {
		return Out{}, sdk.Errorf("unavailable", "no device")
	})
	// The run hook pushes a reading every 20ms while the plugin is loaded.
	sdk.Run(func(ctx context.Context) error {
		for i := 0; ; i++ {
			if err := sdk.Emit(ctx, "run", i); err != nil {
				sdk.Log(ctx, slog.LevelWarn, "run emit", "err", err.Error())
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	native()
}

func main() { sdk.Main() }
