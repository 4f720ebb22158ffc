package config

import (
	"regexp"
	"strings"
	"testing"
)

// The hand-written checks accept exactly what the regexps they replace
// did.
func TestValidNameAddressMatchRegexps(t *testing.T) {
	nameRE := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	addressRE := regexp.MustCompile(`^0[xX][0-9a-fA-F]{40}$`)
	hex40 := strings.Repeat("aF09", 10)
	for _, s := range []string{"", "a", "A", "0", "_a", "-a", "a_", "a-b_C9", "a.b", "a/b", "a b", "é", "a\x00",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "0x" + hex40, "0X" + hex40, "0x" + hex40[:39], "0x" + hex40 + "0",
		"1x" + hex40, "0x" + hex40[:39] + "g", "0x" + hex40[:39] + "\n"} {
		if got, want := validName(s), nameRE.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, the regexp says %v", s, got, want)
		}
		if got, want := validAddress(s), addressRE.MatchString(s); got != want {
			t.Errorf("validAddress(%q) = %v, the regexp says %v", s, got, want)
		}
	}
}

func FuzzValidNameAddress(f *testing.F) {
	nameRE := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	addressRE := regexp.MustCompile(`^0[xX][0-9a-fA-F]{40}$`)
	f.Add("agent-1")
	f.Add("0x" + strings.Repeat("ab", 20))
	f.Fuzz(func(t *testing.T, s string) {
		if validName(s) != nameRE.MatchString(s) {
			t.Errorf("validName(%q) disagrees with the regexp", s)
		}
		if validAddress(s) != addressRE.MatchString(s) {
			t.Errorf("validAddress(%q) disagrees with the regexp", s)
		}
	})
}
