package main

import (
	"fmt"
	"math"
	"net"
	"sync"
	"time"
)

// ggaQuality is the GGA fix quality indicator for each fix.
var ggaQuality = map[string]int{FixNone: 0, Fix2D: 1, Fix3D: 1, FixDGPS: 2, FixRTKFixed: 4, FixRTKFloat: 5}

// rmcMode is the RMC mode indicator (NMEA 2.3+) for each fix.
var rmcMode = map[string]string{FixNone: "N", Fix2D: "A", Fix3D: "A", FixDGPS: "D", FixRTKFixed: "R", FixRTKFloat: "F"}

// sample is one receiver output: what both the pose reading and the NMEA
// sentences are made of.
type sample struct {
	at       time.Time
	ll       LatLon
	hasFix   bool
	fix      string
	sigma    float64
	speed    float64 // m/s, over ground (absolute)
	course   float64 // degrees true
	altitude float64
}

// nmeaSentences renders s as a GGA and an RMC sentence, CRLF-terminated.
func nmeaSentences(s sample) string {
	t := s.at.UTC()
	hms := fmt.Sprintf("%02d%02d%05.2f", t.Hour(), t.Minute(), float64(t.Second())+float64(t.Nanosecond())/1e9)
	lat, ns, lon, ew := "", "", "", ""
	if s.hasFix {
		lat, ns = nmeaAngle(s.ll.Lat, 2, "N", "S")
		lon, ew = nmeaAngle(s.ll.Lon, 3, "E", "W")
	}
	q := ggaQuality[s.fix]
	sats, hdop, age, station := 0, 99.9, "", ""
	if s.hasFix {
		sats, hdop = 12, math.Max(0.5, s.sigma/2)
		if s.fix == Fix2D {
			sats = 3
		}
		if q == 2 || q == 4 || q == 5 {
			age, station = "1.0", "0000"
		}
	}
	alt := ""
	if s.hasFix && s.fix != Fix2D {
		alt = fmt.Sprintf("%.1f", s.altitude)
	}
	gga := fmt.Sprintf("GPGGA,%s,%s,%s,%s,%s,%d,%02d,%.1f,%s,M,0.0,M,%s,%s", hms, lat, ns, lon, ew, q, sats, hdop, alt, age, station)
	status := "V"
	if s.hasFix {
		status = "A"
	}
	date := fmt.Sprintf("%02d%02d%02d", t.Day(), int(t.Month()), t.Year()%100)
	rmc := fmt.Sprintf("GPRMC,%s,%s,%s,%s,%s,%s,%.3f,%.1f,%s,,,%s", hms, status, lat, ns, lon, ew, s.speed/0.514444, s.course, date, rmcMode[s.fix])
	return "$" + gga + "*" + checksum(gga) + "\r\n$" + rmc + "*" + checksum(rmc) + "\r\n"
}

// nmeaAngle renders degrees as NMEA's (d)ddmm.mmmmmm with a hemisphere.
func nmeaAngle(deg float64, width int, pos, neg string) (string, string) {
	h := pos
	if deg < 0 {
		h, deg = neg, -deg
	}
	d := math.Floor(deg)
	m := (deg - d) * 60
	if m >= 59.9999995 { // would print as 60.000000
		d, m = d+1, 0
	}
	return fmt.Sprintf("%0*d%09.6f", width, int(d), m), h
}

func checksum(body string) string {
	var c byte
	for i := 0; i < len(body); i++ {
		c ^= body[i]
	}
	return fmt.Sprintf("%02X", c)
}

// nmeaServer writes the receiver's sentences to every client connected to
// its TCP listener, the way a networked GNSS receiver (or str2str) does.
type nmeaServer struct {
	ln     net.Listener
	mu     sync.Mutex
	cs     map[net.Conn]bool
	closed bool
}

func listenNMEA(addr string) (*nmeaServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nmea_addr %q: %w", addr, err)
	}
	s := &nmeaServer{ln: ln, cs: map[net.Conn]bool{}}
	go s.accept()
	return s, nil
}

func (s *nmeaServer) addr() string { return s.ln.Addr().String() }

// close stops listening and drops every client.
func (s *nmeaServer) close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.cs {
		c.Close()
		delete(s.cs, c)
	}
}

func (s *nmeaServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			c.Close()
		} else {
			s.cs[c] = true
		}
		s.mu.Unlock()
	}
}

// broadcast writes b to every client; a client that cannot take it within
// a short while is dropped, so a stuck reader never slows the robot.
func (s *nmeaServer) broadcast(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.cs {
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Write(b); err != nil {
			c.Close()
			delete(s.cs, c)
		}
	}
}
