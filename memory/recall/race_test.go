//go:build race

package recall_test

// The race detector slows indexing many times over; the crash test uses a
// smaller store under it.
const raceEnabled = true
