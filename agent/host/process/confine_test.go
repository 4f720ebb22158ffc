//go:build linux

package process

import (
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// Fields 14 and 15 are utime and stime; the command name may hold
	// spaces and parentheses.
	got, ok := parseStat([]byte("4242 (evil) (name) R 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1"))
	if !ok || got != 3*time.Second {
		t.Fatalf("parseStat = %v, %v; want 3s", got, ok)
	}
	if _, ok := parseStat([]byte("4242 (x")); ok {
		t.Fatal("parsed a truncated stat")
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 9 10 11"))
	f.Add([]byte("2 (a) b) R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, ok := parseStat(b); ok && d < 0 && len(b) < 20 {
			t.Fatalf("negative CPU time %v from %q", d, b)
		}
	})
}

func TestNetPorts(t *testing.T) {
	ports, udp, err := netPorts([]string{"127.0.0.1:2947", "[::1]:2947", "broker.local:1883"})
	if err != nil || !udp || len(ports) != 3 || ports[0] != 2947 || ports[1] != 1883 || ports[2] != 53 {
		t.Fatalf("netPorts = %v, %v, %v; want 2947, 1883 and DNS, with UDP for the host name", ports, udp, err)
	}
	for _, bad := range []string{"gpsd", "127.0.0.1:0", "127.0.0.1:70000", ":80"} {
		if _, _, err := netPorts([]string{bad}); err == nil {
			t.Errorf("netPorts(%q) accepted", bad)
		}
	}
}

func FuzzNetPorts(f *testing.F) {
	for _, s := range []string{"127.0.0.1:2947", "host:1", "[::1]:80", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ports, _, err := netPorts([]string{s})
		if err == nil && (len(ports) == 0 || ports[0] == 0) {
			t.Fatalf("netPorts(%q) = %v with no error", s, ports)
		}
	})
}
