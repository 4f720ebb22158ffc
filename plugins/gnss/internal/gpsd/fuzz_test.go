package gpsd

import (
	"math"
	"testing"
)

// FuzzDecode: no line panics the report decoder, and a decoded report has
// the class its JSON says, with its body set for the classes we read.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"class":"TPV","device":"/dev/pts/1","status":3,"mode":3,"time":"2026-12-01T12:00:04.000Z","lat":48.117333333,"lon":11.516666667,"altHAE":592.3,"track":84.4,"speed":0.514,"eph":24.7}`))
	f.Add([]byte(`{"class":"SKY","satellites":[{"PRN":4,"el":45,"az":120,"ss":40,"used":true}],"nSat":1,"uSat":1}`))
	f.Add([]byte(`{"class":"GST","time":"2026-12-01T12:00:04.000Z","lat":0.023,"lon":0.02,"alt":0.031}`))
	f.Add([]byte(`{"class":"ERROR","message":"unrecognized request"}`))
	f.Add([]byte(`{"class":"TPV","lat":"north"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := decode(line)
		if err != nil {
			return
		}
		if r.Class == "" || (r.Class == "TPV") != (r.TPV != nil) || (r.Class == "SKY") != (r.SKY != nil) || (r.Class == "GST") != (r.GST != nil) {
			t.Fatalf("%q decoded to %+v", line, r)
		}
		if r.TPV != nil && r.TPV.Lat != nil && math.IsNaN(*r.TPV.Lat) {
			t.Fatalf("NaN latitude from %q", line)
		}
	})
}
