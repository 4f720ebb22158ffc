package ntrip

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxSourcetable bounds a sourcetable; large public casters list a few
// thousand streams in well under this.
const MaxSourcetable = 4 << 20

// Mount is one STR record: a stream the caster offers. Fields a caster
// leaves out are zero.
type Mount struct {
	Name          string   `json:"name"`
	Identifier    string   `json:"identifier,omitempty"`
	Format        string   `json:"format,omitempty"` // e.g. RTCM 3.3
	FormatDetails string   `json:"format_details,omitempty"`
	NavSystems    []string `json:"nav_systems,omitempty"` // GPS, GLO, GAL, BDS …
	Network       string   `json:"network,omitempty"`
	Country       string   `json:"country,omitempty"`
	Lat           float64  `json:"lat,omitempty"`
	Lon           float64  `json:"lon,omitempty"`
	NeedsGGA      bool     `json:"needs_gga" jsonschema:"the caster expects the rover's position (network or nearest-base stream)"`
	Solution      string   `json:"solution,omitempty"` // single base or network
	Auth          string   `json:"auth,omitempty"`     // N none, B Basic, D Digest
	Fee           bool     `json:"fee,omitempty"`
	Bitrate       int      `json:"bitrate,omitempty"`
}

// Caster is a CAS record; Network a NET record.
type Caster struct {
	Host       string `json:"host"`
	Port       int    `json:"port"`
	Identifier string `json:"identifier,omitempty"`
	Operator   string `json:"operator,omitempty"`
}

// Network is a NET record.
type Network struct {
	Name     string `json:"name"`
	Operator string `json:"operator,omitempty"`
}

// Table is a parsed sourcetable. Lines that are not a record — or a
// record with a bad field — are listed in Refused with the reason, not
// dropped silently.
type Table struct {
	Mounts   []Mount   `json:"mounts"`
	Casters  []Caster  `json:"casters,omitempty"`
	Networks []Network `json:"networks,omitempty"`
	Refused  []string  `json:"refused,omitempty"`
}

// ErrTruncated is a sourcetable without its ENDSOURCETABLE line.
var ErrTruncated = errors.New("ntrip: sourcetable ends without ENDSOURCETABLE")

// ParseSourcetable reads a sourcetable body up to ENDSOURCETABLE.
func ParseSourcetable(r io.Reader) (Table, error) {
	var t Table
	sc := bufio.NewScanner(io.LimitReader(r, MaxSourcetable))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimRight(sc.Text(), "\r")
		if l == "" {
			continue
		}
		if l == "ENDSOURCETABLE" {
			return t, nil
		}
		f := strings.Split(l, ";")
		refuse := func(msg string) { t.Refused = append(t.Refused, fmt.Sprintf("line %d %q: %s", line, clip(l), msg)) }
		switch f[0] {
		case "STR":
			m, err := parseSTR(f)
			if err != nil {
				refuse(err.Error())
				continue
			}
			t.Mounts = append(t.Mounts, m)
		case "CAS":
			if len(f) < 3 {
				refuse("CAS needs host and port")
				continue
			}
			port, err := strconv.Atoi(f[2])
			if err != nil || port <= 0 || port > 65535 {
				refuse(fmt.Sprintf("port %q: want 1-65535", f[2]))
				continue
			}
			c := Caster{Host: f[1], Port: port}
			if len(f) > 3 {
				c.Identifier = f[3]
			}
			if len(f) > 4 {
				c.Operator = f[4]
			}
			t.Casters = append(t.Casters, c)
		case "NET":
			if len(f) < 2 || f[1] == "" {
				refuse("NET needs a name")
				continue
			}
			n := Network{Name: f[1]}
			if len(f) > 3 {
				n.Operator = f[3]
			}
			t.Networks = append(t.Networks, n)
		default:
			refuse("want an STR, CAS or NET record")
		}
	}
	if err := sc.Err(); err != nil {
		return t, fmt.Errorf("ntrip: sourcetable: %w", err)
	}
	return t, ErrTruncated
}

// parseSTR reads STR;mountpoint;identifier;format;format-details;carrier;
// nav-system;network;country;latitude;longitude;nmea;solution;generator;
// compr-encryp;authentication;fee;bitrate;misc — callers may stop early
// (RTKLIB's str2str sends only the mountpoint).
func parseSTR(f []string) (Mount, error) {
	at := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	m := Mount{Name: at(1), Identifier: at(2), Format: at(3), FormatDetails: at(4), Network: at(7), Country: at(8), Auth: at(15)}
	if m.Name == "" {
		return Mount{}, errors.New("STR without a mountpoint")
	}
	if ns := at(6); ns != "" {
		m.NavSystems = strings.Split(ns, "+")
	}
	for i, dst := range []*float64{&m.Lat, &m.Lon} {
		v := at(9 + i)
		if v == "" {
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		limit := 90.0 + 270*float64(i) // latitude ±90; longitude −180…360 (some casters use 0–360)
		if err != nil || x < -limit || x > limit || (i == 1 && x < -180) {
			return Mount{}, fmt.Errorf("%s %q: want degrees", []string{"latitude", "longitude"}[i], v)
		}
		*dst = x
	}
	if m.Lon > 180 {
		m.Lon -= 360
	}
	switch v := at(11); v {
	case "", "0":
	case "1":
		m.NeedsGGA = true
	default:
		return Mount{}, fmt.Errorf("nmea %q: want 0 or 1", v)
	}
	switch at(12) {
	case "0":
		m.Solution = "single"
	case "1":
		m.Solution = "network"
	}
	m.Fee = at(16) == "Y"
	if v := at(17); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return Mount{}, fmt.Errorf("bitrate %q: want a non-negative integer", v)
		}
		m.Bitrate = n
	}
	return m, nil
}
