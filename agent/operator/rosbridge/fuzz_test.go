package rosbridge

import (
	"strings"
	"testing"
)

// FuzzParse: any frame parses to a message or an error, never a panic; a
// message that parses names an op, and its topic or service (when its op
// has one) is absolute and printable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","topic":"/robot-1/pose","type":"depai_msgs/RobotState","throttle_rate":100,"id":"s1"}`,
		`{"op":"publish","topic":"/robot-1/cmd_vel","msg":{"linear":{"x":0.5},"angular":{"z":0.1}}}`,
		`{"op":"call_service","service":"rosapi/topics","args":{},"id":3}`,
		`{"op":"call_service","service":"/robot-1/drive.to","args":[]}`,
		`{"op":"fragment","id":"f","data":"{","num":0,"total":2}`,
		`{"op":"set_level","level":"info"}`,
		`{"op":"subscribe","topic":"/a","throttle_rate":1e308}`,
		`{"op":"publish","topic":"/a","msg":null}`,
		`{"op":7}`, `[]`, `{`, ``, `{"id":{"x":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parse(data)
		if err != nil {
			return
		}
		if m.Op == "" {
			t.Fatalf("parsed without an op: %q", data)
		}
		for _, name := range []string{m.Topic, m.Service} {
			if name != "" && (!strings.HasPrefix(name, "/") || strings.ContainsAny(name, " \n\t")) {
				t.Fatalf("name %q passed: %q", name, data)
			}
		}
		if m.ThrottleRate < 0 {
			t.Fatalf("negative throttle rate from %q", data)
		}
	})
}
