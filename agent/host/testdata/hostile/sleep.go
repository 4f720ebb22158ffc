package main

import (
	"os"
	"time"
)

// A child started by hostile.spawn re-runs this binary with HOSTILE_SLEEP
// set: it sleeps instead of serving, and lives as long as nobody kills it.
func init() {
	if os.Getenv("HOSTILE_SLEEP") != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
}
