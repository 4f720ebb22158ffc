// Command chaos is a deliberately badly behaved plugin for the chaos suites
// of both transports: each tool misbehaves in one way (panic, spin forever,
// eat memory, answer too much, sleep past its deadline, exit, reach for a
// capability it was not granted), and chaos.echo behaves, so a test can
// check that a well-behaved call still works next to the bad ones.
package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/depai/depai/sdk"
)

// Echo is chaos.echo's input and output.
type Echo struct {
	Text  string   `json:"text"`
	Count int      `json:"count,omitempty"`
	Tags  []string `json:"tags,omitempty"`
}

// Size asks for a result of Bytes bytes.
type Size struct {
	Bytes int `json:"bytes"`
}

// Sleep asks for a pause of Millis milliseconds.
type Sleep struct {
	Millis int `json:"millis"`
}

// Hog bounds chaos.hog: 0 means until memory runs out. A process plugin
// has no linear-memory limit, so tests of that transport should pass a
// bound or set one on the process.
type Hog struct {
	MB int `json:"mb,omitempty"`
}

// None is an empty input or output.
type None struct{}

// Blob is a result of some size.
type Blob struct {
	Data string `json:"data"`
}

// Tick is chaos.tick's reading.
type Tick struct {
	N int `json:"n"`
}

var (
	ticks int
	spins uint64
	hoard [][]byte
)

func init() {
	sdk.Plugin("chaos", "0.1.0")
	sdk.Tool("chaos.echo", "Returns its input.", func(_ context.Context, in Echo) (Echo, error) { return in, nil })
	sdk.Tool("chaos.panic", "Panics.", func(context.Context, None) (None, error) { panic("chaos: deliberate panic") })
	sdk.Tool("chaos.spin", "Loops forever.", func(context.Context, None) (None, error) {
		for {
			spins++
		}
	})
	sdk.Tool("chaos.hog", "Allocates and touches memory, 1 MiB at a time, until the plugin runs out (or has MB MiB, when MB > 0).", func(_ context.Context, in Hog) (Hog, error) {
		for in.MB <= 0 || len(hoard) < in.MB {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // commit the page, natively too
			}
			hoard = append(hoard, b)
		}
		return Hog{MB: len(hoard)}, nil
	})
	sdk.Tool("chaos.big", "Returns a result of the requested size.", func(_ context.Context, in Size) (Blob, error) {
		return Blob{Data: strings.Repeat("x", in.Bytes)}, nil
	})
	sdk.Tool("chaos.sleep", "Sleeps, then answers.", func(_ context.Context, in Sleep) (None, error) {
		time.Sleep(time.Duration(in.Millis) * time.Millisecond)
		return None{}, nil
	})
	sdk.Tool("chaos.exit", "Exits the plugin with status 3.", func(context.Context, None) (None, error) {
		os.Exit(3)
		return None{}, nil
	})
	sdk.Sensor("chaos.tick", "Counts its polls.", 20*time.Millisecond, func(context.Context) (Tick, error) {
		ticks++
		return Tick{N: ticks}, nil
	})
	sdk.Tool("chaos.steal", "Asks for a secret it was not granted.", func(ctx context.Context, _ None) (Blob, error) {
		v, err := sdk.Secret(ctx, "root-password")
		return Blob{Data: v}, err
	})
}

func main() { sdk.Main() }
