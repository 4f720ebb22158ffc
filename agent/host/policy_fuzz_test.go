package host

import (
	"net/url"
	"strings"
	"testing"
)

func TestAllowedURL(t *testing.T) {
	grants := []string{"api.example.com", "127.0.0.1:8080", "[::1]:9000"}
	tests := map[string]bool{
		"https://api.example.com/v1":        true,
		"http://API.example.com/":           true,
		"https://api.example.com:443/":      true,
		"https://api.example.com:8443/":     false, // a grant without a port covers the default port only
		"https://evil.com/?api.example.com": false,
		"https://api.example.com.evil.com/": false,
		"http://127.0.0.1:8080/x":           true,
		"http://127.0.0.1:8081/x":           false,
		"http://127.0.0.1/x":                false,
		"http://[::1]:9000/":                true,
		"ftp://api.example.com/":            false,
		"http://user@api.example.com/":      true,
	}
	for raw, want := range tests {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := allowedURL(grants, u); got != want {
			t.Errorf("allowedURL(%s) = %v; want %v", raw, got, want)
		}
	}
}

// FuzzAllowedURL checks that the allowlist never admits a host that no
// grant names.
func FuzzAllowedURL(f *testing.F) {
	for _, s := range []string{"https://api.example.com/", "http://127.0.0.1:8080", "http://[::1]:9000/", "http://api.example.com@evil.com/", "http://evil.com#api.example.com", "http://%61pi.example.com/"} {
		f.Add(s, "api.example.com")
		f.Add(s, "127.0.0.1:8080")
	}
	f.Fuzz(func(t *testing.T, raw, grant string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		if !allowedURL([]string{grant}, u) {
			return
		}
		g := strings.Trim(grant, "[]")
		if h, _, ok := strings.Cut(grant, "]:"); ok {
			g = strings.TrimPrefix(h, "[")
		} else if h, _, ok := strings.Cut(grant, ":"); ok && !strings.Contains(g, "::") {
			g = h
		}
		if !strings.EqualFold(u.Hostname(), g) {
			t.Fatalf("%q admitted by grant %q: host %q", raw, grant, u.Hostname())
		}
	})
}
