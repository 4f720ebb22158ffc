//go:build race

package hnsw

// The race detector slows graph building about fifteen-fold; recall is
// checked on a smaller set under it.
const raceEnabled = true
