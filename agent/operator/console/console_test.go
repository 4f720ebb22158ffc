package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/operator/console"
	"github.com/depai/depai/agent/policy"
)

func newConsole(t *testing.T) (*console.Console, *console.Hub, *httptest.Server) {
	t.Helper()
	hub := console.NewHub()
	c, err := console.New(console.Config{Authenticate: func(tok string) (console.Operator, bool) {
		if tok == "secret" {
			return console.Operator{Name: "ada", Role: policy.RoleOperator}, true
		}
		return console.Operator{}, false
	}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Routes(mux)
	// What the operator API does with a session: a protected route.
	mux.HandleFunc("/v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		op, ok := c.Session(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(op)
	})
	mux.HandleFunc("GET /v1/events", console.ServeEvents(hub))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return c, hub, srv
}

func client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func TestLoginSessionAndCSRF(t *testing.T) {
	_, _, srv := newConsole(t)
	c := client(t)
	res, err := c.Post(srv.URL+"/console/login", "application/json", strings.NewReader(`{"token":"wrong"}`))
	if err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v %v", res.Status, err)
	}
	res, err = c.Post(srv.URL+"/console/login", "application/json", strings.NewReader(`{"token":"secret"}`))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("login: %v %v", res, err)
	}
	var s struct {
		CSRF     string           `json:"csrf"`
		Operator console.Operator `json:"operator"`
	}
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil || s.CSRF == "" || s.Operator.Name != "ada" {
		t.Fatalf("login answer %+v, %v", s, err)
	}
	ck := res.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Name != console.CookieName {
		t.Fatalf("session cookie %+v: want HttpOnly and SameSite=Strict", ck)
	}
	get, _ := c.Get(srv.URL + "/v1/whoami")
	if get.StatusCode != 200 {
		t.Errorf("GET with the session: %s", get.Status)
	}
	// A cross-site form post carries the cookie (if a browser sent it at
	// all) but never the CSRF header: refused.
	post, _ := c.Post(srv.URL+"/v1/whoami", "application/x-www-form-urlencoded", strings.NewReader("text=/resume"))
	if post.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without the CSRF header: %s, want 401", post.Status)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/whoami", nil)
	req.Header.Set(console.CSRFHeader, s.CSRF)
	if res, _ := c.Do(req); res.StatusCode != 200 {
		t.Errorf("POST with the CSRF header: %s", res.Status)
	}
	// A forged cookie is nobody.
	forged := &http.Client{}
	req, _ = http.NewRequest("GET", srv.URL+"/v1/whoami", nil)
	req.AddCookie(&http.Cookie{Name: console.CookieName, Value: strings.Repeat("a", 64)})
	if res, _ := forged.Do(req); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged cookie: %s", res.Status)
	}
	if res, _ := c.Post(srv.URL+"/console/logout", "", nil); res.StatusCode != 200 {
		t.Fatal("logout")
	}
	if res, _ := c.Get(srv.URL + "/v1/whoami"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %s", res.Status)
	}
}

func TestPageIsSelfContained(t *testing.T) {
	_, _, srv := newConsole(t)
	res, err := http.Get(srv.URL + "/")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /: %v %v", res, err)
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	for _, asset := range []string{"/console/app.js", "/console/style.css"} {
		if res, err := http.Get(srv.URL + asset); err != nil || res.StatusCode != 200 {
			t.Errorf("%s: %v %v", asset, res, err)
		}
	}
	js, _ := http.Get(srv.URL + "/console/app.js")
	b := new(strings.Builder)
	_, _ = bufio.NewReader(js.Body).WriteTo(b)
	// The SVG namespace is a name, not a host the page talks to.
	script := strings.ReplaceAll(b.String(), "http://www.w3.org/2000/svg", "")
	if strings.Contains(script, "innerHTML") || strings.Contains(script, "http://") || strings.Contains(script, "https://") {
		t.Error("the console script uses innerHTML or names another host")
	}
}

// TestVendoredUPlot: the plot library is the pinned npm release
// (scripts/vendor-uplot), served from the binary with its licence, and it
// makes no request of its own.
func TestVendoredUPlot(t *testing.T) {
	_, _, srv := newConsole(t)
	get := func(path string) string {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, res, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	page := get("/")
	for _, ref := range []string{"/console/vendor/uplot/uPlot.iife.min.js", "/console/vendor/uplot/uPlot.min.css"} {
		if !strings.Contains(page, `"`+ref+`"`) {
			t.Errorf("the page does not load %s", ref)
		}
	}
	js := get("/console/vendor/uplot/uPlot.iife.min.js")
	if !strings.HasPrefix(js, "/*! https://github.com/leeoniya/uPlot (v1.6.32) */") {
		t.Errorf("vendored uPlot starts %q, want v1.6.32 (run scripts/vendor-uplot)", js[:min(len(js), 60)])
	}
	for _, call := range []string{"fetch(", "XMLHttpRequest", "WebSocket", "sendBeacon", "import(", "innerHTML"} {
		if strings.Contains(js, call) {
			t.Errorf("vendored uPlot uses %s", call)
		}
	}
	if lic := get("/console/vendor/uplot/LICENSE"); !strings.Contains(lic, "MIT License") {
		t.Errorf("uPlot's LICENSE is not served with it: %q", lic[:min(len(lic), 80)])
	}
	get("/console/vendor/uplot/uPlot.min.css")
}

func TestEventStream(t *testing.T) {
	_, hub, srv := newConsole(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := bufio.NewReader(res.Body)
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, ": depai fleet events") {
		t.Fatalf("first line %q", line)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		hub.Publish("rover-1", agent.Event{Type: agent.EventReply, Text: "<script>alert(1)</script>"})
	}()
	var got []string
	for len(got) < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line = strings.TrimSpace(line); line != "" {
			got = append(got, line)
		}
	}
	if got[0] != "event: reply" || !strings.Contains(got[1], `"agent":"rover-1"`) || !strings.Contains(got[1], `\u003cscript\u003e`) {
		t.Errorf("event = %q", got)
	}
}
