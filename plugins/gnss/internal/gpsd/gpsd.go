// Package gpsd is a client of gpsd's JSON protocol (TCP 2947): it sends
// ?WATCH={"enable":true,"json":true}; and reads the newline-delimited
// reports gpsd answers with — TPV (time, position, velocity), SKY
// (satellites), GST (error estimates), VERSION, DEVICES, ERROR. Watch reads
// one connection; Stream keeps one up, reconnecting with backoff.
//
// Written here because github.com/stratoberry/go-gpsd is not available to
// this project; the protocol is small (https://gpsd.io/gpsd_json.html).
package gpsd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"time"

	"github.com/depai/depai/plugins/internal/backoff"
)

// MaxReport bounds one report line; a SKY with every satellite of four
// constellations stays well below it.
const MaxReport = 64 << 10

// WatchCommand is what Watch sends first.
const WatchCommand = `?WATCH={"enable":true,"json":true};` + "\n"

// TPV is a time-position-velocity report. Pointer fields are absent when
// gpsd does not know them.
type TPV struct {
	Device string   `json:"device"`
	Mode   int      `json:"mode"`   // 0 unknown, 1 no fix, 2 2D, 3 3D
	Status int      `json:"status"` // 0/1 plain GPS, 2 DGPS, 3 RTK fixed, 4 RTK float, 5 dead reckoning, 6 GNSS+DR, 7 time only, 8 simulated
	Time   string   `json:"time"`   // RFC 3339
	Lat    *float64 `json:"lat"`
	Lon    *float64 `json:"lon"`
	AltHAE *float64 `json:"altHAE"` // metres above the WGS84 ellipsoid
	AltMSL *float64 `json:"altMSL"` // metres above mean sea level
	Alt    *float64 `json:"alt"`    // older gpsd: MSL
	Track  *float64 `json:"track"`  // degrees true
	Speed  *float64 `json:"speed"`  // metres per second
	Eph    *float64 `json:"eph"`    // horizontal error estimate, metres
	Epv    *float64 `json:"epv"`
	Epx    *float64 `json:"epx"`
	Epy    *float64 `json:"epy"`
}

// Satellite is one entry of a SKY report.
type Satellite struct {
	PRN  int     `json:"PRN"`
	El   float64 `json:"el"`
	Az   float64 `json:"az"`
	SS   float64 `json:"ss"` // signal strength, dBHz
	Used bool    `json:"used"`
}

// SKY lists the satellites in view.
type SKY struct {
	Device     string      `json:"device"`
	Satellites []Satellite `json:"satellites"`
	NSat       *int        `json:"nSat"`
	USat       *int        `json:"uSat"`
	HDOP       *float64    `json:"hdop"`
}

// GST is gpsd's relay of the receiver's error statistics (1-sigma metres).
type GST struct {
	Device string   `json:"device"`
	Time   string   `json:"time"`
	Lat    *float64 `json:"lat"`
	Lon    *float64 `json:"lon"`
	Alt    *float64 `json:"alt"`
}

// Report is one line from gpsd. Class says which field is set; classes this
// package does not decode (VERSION, DEVICES, WATCH, PPS …) come with only
// Class and Raw.
type Report struct {
	Class string
	TPV   *TPV
	SKY   *SKY
	GST   *GST
	Error string // an ERROR report's message
	Raw   json.RawMessage
}

// DecodeError is a line that is not a gpsd report. Watch yields it and reads on.
type DecodeError struct {
	Line string
	Err  error
}

func (e *DecodeError) Error() string {
	l := e.Line
	if len(l) > 60 {
		l = l[:60] + "…"
	}
	return fmt.Sprintf("gpsd: report %q: %v", l, e.Err)
}

// LinkError is a connection that failed or ended; Stream reconnects after it.
type LinkError struct {
	Op  string // "dial", "watch" or "read"
	Err error
}

func (e *LinkError) Error() string { return "gpsd: " + e.Op + ": " + e.Err.Error() }
func (e *LinkError) Unwrap() error { return e.Err }

// Watch sends the watch command on conn and yields its reports until conn
// fails, ends or ctx is done. Bad lines yield a *DecodeError and reading
// goes on; the end of the connection yields one *LinkError (also for EOF:
// gpsd closing is news for the caller). If conn has SetReadDeadline, ctx
// ending unblocks a pending read.
func Watch(ctx context.Context, conn io.ReadWriter) iter.Seq2[Report, error] {
	return func(yield func(Report, error) bool) {
		if d, ok := conn.(interface{ SetReadDeadline(time.Time) error }); ok {
			stop := context.AfterFunc(ctx, func() { _ = d.SetReadDeadline(time.Unix(1, 0)) })
			defer stop()
		}
		if _, err := io.WriteString(conn, WatchCommand); err != nil {
			yield(Report{}, &LinkError{Op: "watch", Err: err})
			return
		}
		sc := bufio.NewScanner(conn)
		sc.Buffer(make([]byte, 0, 4096), MaxReport)
		for sc.Scan() {
			if ctx.Err() != nil {
				return
			}
			if len(sc.Bytes()) == 0 {
				continue
			}
			r, err := decode(sc.Bytes())
			if !yield(r, err) {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		yield(Report{}, &LinkError{Op: "read", Err: err})
	}
}

func decode(line []byte) (Report, error) {
	var head struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return Report{}, &DecodeError{Line: string(line), Err: err}
	}
	if head.Class == "" {
		return Report{}, &DecodeError{Line: string(line), Err: errors.New(`no "class"`)}
	}
	r := Report{Class: head.Class, Error: head.Message, Raw: json.RawMessage(append([]byte(nil), line...))}
	var err error
	switch head.Class {
	case "TPV":
		r.TPV = new(TPV)
		err = json.Unmarshal(line, r.TPV)
	case "SKY":
		r.SKY = new(SKY)
		err = json.Unmarshal(line, r.SKY)
	case "GST":
		r.GST = new(GST)
		err = json.Unmarshal(line, r.GST)
	}
	if err != nil {
		return Report{}, &DecodeError{Line: string(line), Err: err}
	}
	return r, nil
}

// Config says which gpsd to watch and how to reconnect.
type Config struct {
	Addr    string // host:port, e.g. 127.0.0.1:2947
	Backoff backoff.Backoff
	// Dial opens the connection; default a net.Dialer with a 5 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Stream watches cfg.Addr until ctx ends: it yields Watch's reports and
// errors, and after a *LinkError (the dial failed, gpsd went away) it waits
// a backoff and connects again. The backoff resets once a connection
// delivered a report. Breaking out of the loop closes the connection.
func Stream(ctx context.Context, cfg Config) iter.Seq2[Report, error] {
	return func(yield func(Report, error) bool) {
		dial := cfg.Dial
		if dial == nil {
			dial = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
		}
		b := cfg.Backoff
		for ctx.Err() == nil {
			conn, err := dial(ctx, "tcp", cfg.Addr)
			if err != nil {
				if ctx.Err() != nil || !yield(Report{}, &LinkError{Op: "dial", Err: err}) {
					return
				}
			} else {
				ok := func() bool {
					defer conn.Close()
					for r, err := range Watch(ctx, conn) {
						if err == nil {
							b.Reset()
						}
						if !yield(r, err) {
							return false
						}
					}
					return true
				}()
				if !ok {
					return
				}
			}
			if !backoff.Sleep(ctx, b.Next()) {
				return
			}
		}
	}
}
