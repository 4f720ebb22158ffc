//go:build race

package memory_test

// The race detector slows badger many times over; the damage tests use
// smaller stores under it.
const raceEnabled = true
