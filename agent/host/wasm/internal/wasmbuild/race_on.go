//go:build race

package wasmbuild

const raceEnabled = true
