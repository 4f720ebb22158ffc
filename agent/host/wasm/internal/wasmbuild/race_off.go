//go:build !race

package wasmbuild

const raceEnabled = false
