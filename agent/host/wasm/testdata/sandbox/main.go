// Command sandbox reports what a WASM plugin can see of the machine: the
// clock, randomness, environment, files and network.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"time"

	"github.com/depai/depai/sdk"
)

// Report is what the plugin saw.
type Report struct {
	Year    int    `json:"year"`
	Random  string `json:"random"`
	Env     int    `json:"env"`
	FileErr string `json:"file_err"`
	DialErr string `json:"dial_err"`
}

func init() {
	sdk.Plugin("sandbox", "0.1.0")
	sdk.Tool("sandbox.look", "Reports what the plugin can see.", func(context.Context, struct{}) (Report, error) {
		var r Report
		r.Year = time.Now().Year()
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		r.Random = hex.EncodeToString(b)
		r.Env = len(os.Environ())
		if _, err := os.ReadFile("/etc/passwd"); err != nil {
			r.FileErr = err.Error()
		}
		if c, err := net.Dial("tcp", "127.0.0.1:22"); err != nil {
			r.DialErr = err.Error()
		} else {
			c.Close()
		}
		return r, nil
	})
}

func main() { sdk.Main() }
