package sparkplug

import (
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// birth is an NBIRTH as the reference encoder (npm sparkplug-payload 1.0.3)
// writes it; see testdata/encode.js and TestReferenceEncoder.
const birth = "0880e4a2cead33120b0a05626453657120085807121e0a0f626174746572792f766f6c746167651002200a690000000000803840120d0a0474656d702009650000aa41120f0a05636f756e74200350fbffffff0f12080a026f6b200b7001120d0a056c6162656c200c7a0268691803"

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkBirth(t *testing.T, p Payload) {
	t.Helper()
	if !p.Timestamp.Equal(time.UnixMilli(1764590400000)) || !p.HasSeq || p.Seq != 3 || len(p.Metrics) != 6 {
		t.Fatalf("payload %+v", p)
	}
	if bd, ok := p.BdSeq(); !ok || bd != 7 {
		t.Fatalf("bdSeq %d, %v", bd, ok)
	}
	want := []struct {
		name  string
		typ   DataType
		num   float64
		text  string
		alias uint64
	}{
		{"bdSeq", UInt64, 7, "", 0}, {"battery/voltage", Double, 24.5, "", 2}, {"temp", Float, 21.25, "", 0},
		{"count", Int32, -5, "", 0}, {"ok", Boolean, 1, "", 0}, {"label", String, 0, "hi", 0},
	}
	for i, w := range want {
		m := p.Metrics[i]
		if m.Name != w.name || m.Type != w.typ || m.Number != w.num || m.Text != w.text || m.Alias != w.alias || m.Null {
			t.Errorf("metrics[%d] = %+v; want %+v", i, m, w)
		}
	}
	if !p.Metrics[1].HasAlias || p.Metrics[0].HasAlias {
		t.Error("alias presence")
	}
}

func TestDecode(t *testing.T) {
	p, err := Decode(mustHex(t, birth))
	if err != nil {
		t.Fatal(err)
	}
	checkBirth(t, p)
	full := mustHex(t, birth)
	for _, bad := range [][]byte{full[:len(full)-3], {0x12, 0x05, 0x0a}, {0x0a, 0x01}, {0x12, 0x02, 0x60, 0x01}, {0xff}} {
		if _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%x) = %v; want ErrMalformed", bad, err)
		}
	}
	// A metric with no value is null, never zero.
	if p, err := Decode([]byte{0x12, 0x03, 0x0a, 0x01, 'x'}); err != nil || !p.Metrics[0].Null || p.Metrics[0].IsNumber {
		t.Fatalf("valueless metric %+v, %v", p, err)
	}
}

// TestReferenceEncoder: payloads encoded by the reference implementation
// (npm sparkplug-payload, installed by scripts/test) decode to what was
// encoded — every scalar type, negative integers, aliases, null metrics,
// and fields this decoder skips (properties).
func TestReferenceEncoder(t *testing.T) {
	dir := os.Getenv("DEPAI_NPM_CACHE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "depai", "npm")
	}
	mods := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(mods, "sparkplug-payload")); err != nil {
		t.Fatalf("npm sparkplug-payload is not installed in %s: run scripts/test, which installs it (%v)", mods, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run scripts/test")
	}
	in := `[
	 {"timestamp":1764590400000,"seq":3,"metrics":[{"name":"bdSeq","type":"UInt64","value":7},{"name":"battery/voltage","alias":2,"type":"Double","value":24.5},{"name":"temp","type":"Float","value":21.25},{"name":"count","type":"Int32","value":-5},{"name":"ok","type":"Boolean","value":true},{"name":"label","type":"String","value":"hi"}]},
	 {"timestamp":1764590401000,"seq":4,"metrics":[{"alias":2,"type":"Double","value":-1.5,"timestamp":1764590400500},{"name":"i8","type":"Int8","value":-128},{"name":"i64","type":"Int64","value":-9000000000},{"name":"u32","type":"UInt32","value":4000000000},{"name":"gone","type":"Double","isNull":true},{"name":"prop","type":"Int16","value":12,"properties":{"engUnit":{"type":"String","value":"V"}}}]}
	]`
	cmd := exec.Command(node, "testdata/encode.js")
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	cmd.Stdin = strings.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("encode.js: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != 2 {
		t.Fatalf("encode.js wrote %q", out)
	}
	if lines[0] != birth {
		t.Errorf("the reference encoder's birth changed:\n%s\nwant\n%s", lines[0], birth)
	}
	p, err := Decode(mustHex(t, lines[0]))
	if err != nil {
		t.Fatal(err)
	}
	checkBirth(t, p)
	d, err := Decode(mustHex(t, lines[1]))
	if err != nil {
		t.Fatal(err)
	}
	m := d.Metrics
	if len(m) != 6 || m[0].Name != "" || m[0].Alias != 2 || m[0].Number != -1.5 || !m[0].Timestamp.Equal(time.UnixMilli(1764590400500)) {
		t.Fatalf("data by alias %+v", m)
	}
	if m[1].Number != -128 || m[2].Number != -9000000000 || m[3].Number != 4000000000 || !m[4].Null || m[4].IsNumber || m[5].Number != 12 || m[5].Type != Int16 {
		t.Fatalf("metrics %+v", m)
	}
}

// FuzzDecode: no input panics the decoder, and a decoded metric is either
// null, a number, or text.
func FuzzDecode(f *testing.F) {
	f.Add(mustHex(f, birth))
	f.Add([]byte{0x12, 0x03, 0x0a, 0x01, 'x'})
	f.Add([]byte{0x12, 0x05, 0x60, 0xfb, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(p.Metrics) > MaxMetrics {
			t.Fatalf("%d metrics", len(p.Metrics))
		}
		if again, _ := Decode(b); !reflect.DeepEqual(again, p) {
			t.Fatalf("decoding twice differs: %+v, %+v", p, again)
		}
	})
}

// BenchmarkDecode: the reference encoder's six-metric NBIRTH.
func BenchmarkDecode(b *testing.B) {
	p := mustHex(b, birth)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}
