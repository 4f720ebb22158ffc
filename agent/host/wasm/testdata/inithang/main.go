// Command inithang is a WASM plugin whose init() never returns: its load
// must fail at the host's load deadline and hold up no other plugin.
package main

import "github.com/depai/depai/sdk"

var spins int

func init() {
	sdk.Plugin("inithang", "0.1.0")
	for {
		spins++
	}
}

func main() { sdk.Main() }
