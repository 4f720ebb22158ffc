// Package console is the operator's web console: a page served by depai
// run on the operator address, with its assets embedded in the binary (no
// Node build at run time, no request to any other host). It shows the
// fleet, a map of the robots with their keep-out zones and geofence, plots
// of each sensor's readings (/readings, drawn with uPlot, vendored from npm
// by scripts/vendor-uplot), the approvals queue, the audit log, memory
// search, tasks (/tasks), earnings (/earnings) and a chat with any agent,
// with an e-stop button on every view — all through the operator API.
//
// An operator logs in with their token once; the console keeps a session
// cookie (HttpOnly, SameSite=Strict) and every state-changing request must
// also carry the session's CSRF token in a header, so another site can
// neither read the session nor act with it. The fleet-wide event stream
// (GET /v1/events, SSE) feeds the page and any script.
package console

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/depai/depai/agent/policy"
)

//go:embed assets
var assets embed.FS

// CookieName is the session cookie's name.
const CookieName = "depai_session"

// CSRFHeader carries the session's CSRF token on state-changing requests.
const CSRFHeader = "X-Depai-CSRF"

// Operator is who a token or a session belongs to.
type Operator struct {
	Name string      `json:"name"`
	Role policy.Role `json:"role"`
}

// Config configures a Console.
type Config struct {
	// Authenticate checks an operator token; required.
	Authenticate func(token string) (Operator, bool)
	// SessionTTL is how long a session lasts without use. Default 12h.
	SessionTTL time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Console serves the page, the login and the event stream.
type Console struct {
	cfg    Config
	static http.Handler

	mu       sync.Mutex // guards sessions
	sessions map[string]*session
}

type session struct {
	op      Operator
	csrf    string
	expires time.Time
}

// New returns a Console.
func New(cfg Config) (*Console, error) {
	if cfg.Authenticate == nil {
		return nil, fmt.Errorf("console: Config.Authenticate is required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return &Console{cfg: cfg, static: http.FileServerFS(sub), sessions: map[string]*session{}}, nil
}

// Routes registers the console's routes on mux: the page and its assets,
// login, logout and session. The event stream is served by Events, behind
// the API's authentication.
func (c *Console) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.page)
	mux.HandleFunc("GET /console/", c.asset)
	mux.HandleFunc("POST /console/login", c.login)
	mux.HandleFunc("POST /console/logout", c.logout)
	mux.HandleFunc("GET /console/session", c.sessionInfo)
}

// securityHeaders keep the page from being framed, sniffed or fed a
// script from anywhere but itself.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	http.ServeFileFS(w, r, assets, "assets/index.html")
}

func (c *Console) asset(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	http.StripPrefix("/console", c.static).ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on Linux
	return hex.EncodeToString(b)
}

// login trades an operator token for a session cookie and a CSRF token.
// The token travels in the body, never in a URL.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.Token == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `expected {"token": "..."}`)
		return
	}
	op, ok := c.cfg.Authenticate(in.Token)
	if !ok {
		writeError(w, http.StatusUnauthorized, "unauthorized", "that token is not an operator's")
		return
	}
	s := &session{op: op, csrf: token(), expires: c.cfg.Now().Add(c.cfg.SessionTTL)}
	id := token()
	c.mu.Lock()
	now := c.cfg.Now()
	for k, old := range c.sessions {
		if now.After(old.expires) {
			delete(c.sessions, k)
		}
	}
	c.sessions[id] = s
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.SessionTTL.Seconds())})
	writeJSON(w, http.StatusOK, map[string]any{"operator": op, "csrf": s.csrf})
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(CookieName); err == nil {
		c.mu.Lock()
		delete(c.sessions, ck.Value)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]bool{"logged_out": true})
}

func (c *Console) sessionInfo(w http.ResponseWriter, r *http.Request) {
	s, ok := c.lookup(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "unauthorized", "not logged in")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"operator": s.op, "csrf": s.csrf})
}

func (c *Console) lookup(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s == nil || c.cfg.Now().After(s.expires) {
		delete(c.sessions, ck.Value)
		return nil, false
	}
	s.expires = c.cfg.Now().Add(c.cfg.SessionTTL)
	return s, true
}

// Session authenticates an API request by its session cookie. A request
// that may change state (any method but GET and HEAD) must also carry the
// session's CSRF token in CSRFHeader; without it the cookie counts for
// nothing.
func (c *Console) Session(r *http.Request) (Operator, bool) {
	s, ok := c.lookup(r)
	if !ok {
		return Operator{}, false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(s.csrf)) != 1 {
			return Operator{}, false
		}
	}
	return s.op, true
}

// keepAlive is how often an idle event stream sends a comment, so proxies
// and browsers keep it open.
const keepAlive = 10 * time.Second

// ServeEvents serves GET /v1/events from hub: the fleet's events as SSE
// (event: the agent event's type; data: a FleetEvent), until the client
// leaves. The caller has authenticated the request.
func ServeEvents(hub *Hub) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { serveEvents(hub, w, r) }
}

func serveEvents(hub *Hub, w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "internal", "streaming unsupported")
		return
	}
	events, dropped, cancel := hub.Subscribe(256)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": depai fleet events\n\n")
	fl.Flush()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case fe := <-events:
			if n := dropped(); n > 0 {
				fmt.Fprintf(w, "event: dropped\ndata: {\"dropped\":%d}\n\n", n)
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", fe.Event.Type, encode(fe))
		}
		fl.Flush()
	}
}
