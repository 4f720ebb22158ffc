// Package ntrip is an NTRIP client, version 1 and 2: the caster's
// sourcetable, and a mountpoint's correction stream with HTTP Basic auth
// and GGA upload — the rover's position, which network and nearest-base
// mountpoints (GEODNET's AUTO among them) wait for before they send
// anything. It speaks the protocol over a plain TCP connection because
// NTRIP v1 answers "ICY 200 OK" and "SOURCETABLE 200 OK", which net/http
// does not parse.
//
// Written here because github.com/go-gnss/ntrip is not available to this
// project.
package ntrip

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config is one caster, mountpoint and account.
type Config struct {
	Addr     string // caster host:port
	Mount    string // without the leading slash; empty for the sourcetable
	User     string
	Password string
	// Version is 1 or 2 (default 2). Version 2 sends Ntrip-Version:
	// Ntrip/2.0 and accepts a chunked HTTP/1.1 answer; a v1-only caster
	// answers ICY either way, which is accepted too.
	Version int
	// GGA is the rover's position as a whole NMEA GGA sentence; it is sent
	// in the Ntrip-GGA header (v2), right after connecting and then every
	// GGAInterval (default 10 s).
	GGA         string
	GGAInterval time.Duration
	// DialTimeout bounds connecting (default 5 s); ResponseTimeout the wait
	// for the caster's answer (default 10 s); IdleTimeout a stream that sent
	// nothing for that long (default 15 s) — a caster that hangs.
	DialTimeout, ResponseTimeout, IdleTimeout time.Duration
	UserAgent                                 string // default "NTRIP depai/0.1"
}

func (c Config) withDefaults() Config {
	if c.Version == 0 {
		c.Version = 2
	}
	if c.GGAInterval <= 0 {
		c.GGAInterval = 10 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 15 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = "NTRIP depai/0.1"
	}
	return c
}

// StatusError is a caster's refusal: 401 for bad credentials, 404 …
type StatusError struct {
	Code   int
	Status string // the status line
}

func (e *StatusError) Error() string { return fmt.Sprintf("ntrip: caster answered %q", e.Status) }

// ErrNoMount is a caster answering a stream request with its sourcetable:
// the mountpoint does not exist.
var ErrNoMount = errors.New("ntrip: mountpoint not on the caster (it answered with its sourcetable)")

// Stream is a mountpoint's correction bytes. Read fails after IdleTimeout
// without data. Close ends it and its GGA uploads.
type Stream struct {
	conn    net.Conn
	r       io.Reader
	idle    time.Duration
	Version int // the protocol the caster answered with: 1 (ICY) or 2

	stop     chan struct{}
	wg       sync.WaitGroup
	closeOne sync.Once
	mu       sync.Mutex
	ggaErr   error
	ggaSent  int
}

// Read reads correction bytes.
func (s *Stream) Read(p []byte) (int, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(s.idle))
	n, err := s.r.Read(p)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return n, fmt.Errorf("ntrip: caster sent nothing for %v: %w", s.idle, err)
	}
	return n, err
}

// GGASent is how many GGA sentences went up, and the last upload error.
func (s *Stream) GGASent() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ggaSent, s.ggaErr
}

// Close closes the connection.
func (s *Stream) Close() error {
	var err error
	s.closeOne.Do(func() {
		close(s.stop)
		err = s.conn.Close()
		s.wg.Wait()
	})
	return err
}

// Connect requests cfg.Mount and returns its stream once the caster
// accepted. ctx bounds connecting and the answer; the stream lives on
// until Close.
func Connect(ctx context.Context, cfg Config) (*Stream, error) {
	cfg = cfg.withDefaults()
	if cfg.Mount == "" {
		return nil, errors.New("ntrip: no mountpoint given")
	}
	conn, br, status, hdr, err := request(ctx, cfg, "/"+cfg.Mount)
	if err != nil {
		return nil, err
	}
	s := &Stream{conn: conn, idle: cfg.IdleTimeout, stop: make(chan struct{})}
	switch {
	case status.proto == "ICY" && status.code == 200:
		s.r, s.Version = br, 1
	case status.proto == "SOURCETABLE":
		conn.Close()
		return nil, ErrNoMount
	case strings.HasPrefix(status.proto, "HTTP/") && status.code == 200:
		if strings.HasPrefix(hdr.Get("Content-Type"), "gnss/sourcetable") {
			conn.Close()
			return nil, ErrNoMount
		}
		s.r, s.Version = br, 2
		if strings.EqualFold(hdr.Get("Transfer-Encoding"), "chunked") {
			s.r = httputil.NewChunkedReader(br)
		}
	default:
		conn.Close()
		return nil, &StatusError{Code: status.code, Status: status.line}
	}
	if cfg.GGA != "" {
		// The first GGA goes up before Connect returns: a nearest-base
		// mountpoint sends nothing until it has one.
		line := strings.TrimRight(cfg.GGA, "\r\n") + "\r\n"
		if err := s.sendGGA(line, cfg.GGAInterval); err != nil {
			conn.Close()
			return nil, fmt.Errorf("ntrip: send GGA: %w", err)
		}
		s.wg.Add(1)
		go s.uploadGGA(line, cfg.GGAInterval)
	}
	return s, nil
}

// uploadGGA writes the rover's position every interval; a write error is
// kept for GGASent, and the read side notices the dead link.
func (s *Stream) uploadGGA(line string, every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		_ = s.sendGGA(line, every)
	}
}

func (s *Stream) sendGGA(line string, timeout time.Duration) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := io.WriteString(s.conn, line)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.ggaSent++
	}
	s.ggaErr = err
	return err
}

type statusLine struct {
	line  string
	proto string // "ICY", "SOURCETABLE", "HTTP/1.1" …
	code  int
}

// request sends a GET and reads the answer's status line, and its headers
// unless it is ICY (v1 casters start the stream right after it).
func request(ctx context.Context, cfg Config, path string) (net.Conn, *bufio.Reader, statusLine, textproto.MIMEHeader, error) {
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, nil, statusLine{}, nil, fmt.Errorf("ntrip: %w", err)
	}
	fail := func(err error) (net.Conn, *bufio.Reader, statusLine, textproto.MIMEHeader, error) {
		conn.Close()
		return nil, nil, statusLine{}, nil, err
	}
	deadline := time.Now().Add(cfg.ResponseTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var b strings.Builder
	if cfg.Version == 2 {
		fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nNtrip-Version: Ntrip/2.0\r\n", path, cfg.Addr)
	} else {
		fmt.Fprintf(&b, "GET %s HTTP/1.0\r\n", path)
	}
	fmt.Fprintf(&b, "User-Agent: %s\r\n", cfg.UserAgent)
	if cfg.User != "" || cfg.Password != "" {
		fmt.Fprintf(&b, "Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(cfg.User+":"+cfg.Password)))
	}
	if cfg.Version == 2 && cfg.GGA != "" && path != "/" {
		fmt.Fprintf(&b, "Ntrip-GGA: %s\r\n", strings.TrimRight(cfg.GGA, "\r\n"))
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return fail(fmt.Errorf("ntrip: send request: %w", err))
	}
	br := bufio.NewReaderSize(conn, 8192)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return fail(fmt.Errorf("ntrip: caster %s did not answer within %v: %w", cfg.Addr, cfg.ResponseTimeout, err))
		}
		return fail(fmt.Errorf("ntrip: read answer: %w", err))
	}
	st, err := parseStatus(line)
	if err != nil {
		return fail(err)
	}
	var hdr textproto.MIMEHeader
	if st.proto != "ICY" {
		// A refusal may end without headers (str2str's 401 does).
		if hdr, err = tp.ReadMIMEHeader(); err != nil && st.code == 200 {
			return fail(fmt.Errorf("ntrip: read answer headers: %w", err))
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, st, hdr, nil
}

func parseStatus(line string) (statusLine, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return statusLine{}, fmt.Errorf("ntrip: answer %q is not a status line", clip(line))
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || (f[0] != "ICY" && f[0] != "SOURCETABLE" && !strings.HasPrefix(f[0], "HTTP/")) {
		return statusLine{}, fmt.Errorf("ntrip: answer %q is not a status line", clip(line))
	}
	return statusLine{line: line, proto: f[0], code: code}, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// GetSourcetable fetches and parses the caster's sourcetable.
func GetSourcetable(ctx context.Context, cfg Config) (Table, error) {
	cfg = cfg.withDefaults()
	conn, br, st, hdr, err := request(ctx, cfg, "/")
	if err != nil {
		return Table{}, err
	}
	defer conn.Close()
	if st.code != 200 || st.proto == "ICY" {
		return Table{}, &StatusError{Code: st.code, Status: st.line}
	}
	_ = conn.SetReadDeadline(time.Now().Add(cfg.ResponseTimeout))
	var body io.Reader = br
	if strings.EqualFold(hdr.Get("Transfer-Encoding"), "chunked") {
		body = httputil.NewChunkedReader(br)
	}
	return ParseSourcetable(body)
}
