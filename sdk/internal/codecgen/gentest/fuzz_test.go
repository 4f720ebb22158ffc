package gentest

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/depai/depai/sdk/internal/codec"
)

// checkers run one document through a type's generated codec.
var checkers = []func(*testing.T, []byte){
	check[GreetIn]("GreetIn"), check[GreetOut]("GreetOut"),
	check[AddIn]("AddIn"), check[Note]("Note"), check[FindIn]("FindIn"), check[FindOut]("FindOut"),
	check[Echo]("Echo"), check[Size]("Size"), check[Hog]("Hog"), check[None]("None"), check[Blob]("Blob"), check[Tick]("Tick"),
	check[Kinds]("Kinds"), check[Tree]("Tree"), check[Names]("Names"), check[*Note]("*Note"), check[[]Note]("[]Note"),
}

func generated[T any](t testing.TB, name string) (func([]byte, bool, *T) bool, func([]byte, *T) ([]byte, bool)) {
	t.Helper()
	d, e := codec.Generated(name)
	dec, _ := d.(func([]byte, bool, *T) bool)
	enc, _ := e.(func([]byte, *T) ([]byte, bool))
	if dec == nil || enc == nil {
		t.Fatalf("no generated codec for %s", name)
	}
	return dec, enc
}

// check holds the generated decoder to what it promises: where it accepts
// a document, sdk/internal/codec (strict or not) and encoding/json (not
// strict) accept it and decode the same value; and the generated encoder,
// where it encodes a value, writes the bytes of both.
func check[T any](name string) func(*testing.T, []byte) {
	return func(t *testing.T, data []byte) {
		dec, enc := generated[T](t, name)
		for _, strict := range []bool{false, true} {
			var g, r T
			gok := dec(data, strict, &g)
			unmarshal := codec.Unmarshal
			if strict {
				unmarshal = codec.UnmarshalStrict
			}
			rerr := unmarshal(data, &r)
			if gok {
				if rerr != nil {
					t.Fatalf("%s strict=%v: generated accepts %q, the codec refuses it: %v", name, strict, data, rerr)
				}
				if !reflect.DeepEqual(g, r) {
					t.Fatalf("%s strict=%v: %q decodes to %#v, the codec's %#v", name, strict, data, g, r)
				}
				var j T
				if err := json.Unmarshal(data, &j); !strict && (err != nil || !reflect.DeepEqual(g, j)) {
					t.Fatalf("%s: generated decodes %q to %#v, encoding/json to %#v (%v)", name, data, g, j, err)
				}
			}
			if rerr != nil {
				continue
			}
			want, werr := codec.Marshal(r)
			got, eok := enc(nil, &r)
			if !eok {
				continue
			}
			if werr != nil {
				t.Fatalf("%s: generated encodes %#v, the codec refuses: %v", name, r, werr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: generated encodes %#v as %s, the codec as %s", name, r, got, want)
			}
			if j, err := json.Marshal(r); err != nil || !bytes.Equal(got, j) {
				t.Fatalf("%s: generated encodes %#v as %s, encoding/json as %s (%v)", name, r, got, j, err)
			}
		}
	}
}

var seeds = []string{
	`{"name":"Ada"}`, `{"greeting":"Hello, Ada!"}`, `{"name":"A\u00e9\ud83d\ude00\"<>&"}`, ` { "name" : "x" } `,
	`{"text":"milk","tags":["shop","home"]}`, `{"id":"n1","text":"t","tags":[]}`, `{"tag":"x","limit":3}`,
	`{"notes":[{"id":"a","text":"b","tags":["c"]},{"id":"d","text":"e"}]}`, `{"notes":null}`, `{"notes":[]}`,
	`{"text":"the quick brown fox jumps over the lazy dog twice","count":7,"tags":["alpha","beta","gam"]}`,
	`{"bytes":1024}`, `{"mb":0}`, `{}`, `{"data":"x"}`, `{"n":-1}`, `null`, `[]`, `"x"`, `1`,
	`{"b":true,"i8":-128,"i16":32767,"i32":1,"i64":-9223372036854775808,"u":1,"u8":255,"u16":65535,"u32":4294967295,"u64":18446744073709551615,"f32":3.4e38,"f64":1e-7,"level":"debug","Untagged":"u","<a&b>":"h","p":5,"ps":{"id":"i","text":"t"},"names":["a"],"grid":[[1,2.5],[],null],"ok":false,"tree":{"v":1,"kids":[{"v":2},null]}}`,
	`{"b":false,"i16":0,"i64":0,"u8":0,"u32":0,"f32":0,"Untagged":"","<a&b>":"","p":null,"names":null}`,
	`{"i8":128}`, `{"i64":1.0}`, `{"u":-1}`, `{"f32":1e39}`, `{"f64":-0}`, `{"NAME":"x"}`, `{"name":"x","name":"y"}`,
	`{"notes":[{"id":"a","text":"b"}],"notes":[{"id":"c"}]}`, `{"v":1,"kids":[{"v":2,"kids":[{"v":3}]}]}`,
	`[{"id":"a","text":"b"}]`, `{"id":"a","text":"b","extra":1}`, `{"name":"x"`, `{"name":"x"} x`, `{"name":"\x01"}`,
	`{"name":"\xff"}`, `{"limit":1e2}`, `{"tags":["a",1]}`, `{"ok":null,"p":null,"ps":null}`,
}

// FuzzGenerated runs every document through every type's generated codec.
func FuzzGenerated(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range checkers {
			c(t, data)
		}
	})
}

// TestGeneratedDecides checks that the generated code takes the documents
// a host sends — which FuzzGenerated cannot, since declining is always
// allowed — and declines what it must leave to the reflective codec.
func TestGeneratedDecides(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		strict    bool
		want      bool
	}{
		{"Echo", `{"text":"the quick brown fox jumps over the lazy dog twice","count":7,"tags":["alpha","beta","gam"]}`, true, true},
		{"GreetIn", `{"name":"Ada"}`, true, true},
		{"FindOut", `{"notes":[{"id":"a","text":"b","tags":["c"]}]}`, true, true},
		{"Kinds", seeds[20], false, true}, // every kind, required or not
		{"Kinds", seeds[20], true, true},
		{"Kinds", `{"i16":0}`, true, false},             // "b" and the other required ones are missing
		{"Kinds", seeds[21], true, true},                // the required ones, null for a pointer
		{"GreetIn", `{"NAME":"x"}`, false, false},       // a folded match is the codec's
		{"FindIn", `{"limit":1e2}`, false, false},       // so is a whole number with an exponent
		{"Note", `{"id":"a"}`, true, false},             // a required field is missing
		{"Note", `{"id":"a"}`, false, true},             // which only strict decoding refuses
		{"GreetIn", `{"name":"x","y":1}`, false, false}, // an unknown key
	} {
		var ok bool
		switch tc.name {
		case "Echo":
			dec, _ := generated[Echo](t, tc.name)
			ok = dec([]byte(tc.doc), tc.strict, new(Echo))
		case "GreetIn":
			dec, _ := generated[GreetIn](t, tc.name)
			ok = dec([]byte(tc.doc), tc.strict, new(GreetIn))
		case "FindOut":
			dec, _ := generated[FindOut](t, tc.name)
			ok = dec([]byte(tc.doc), tc.strict, new(FindOut))
		case "FindIn":
			dec, _ := generated[FindIn](t, tc.name)
			ok = dec([]byte(tc.doc), tc.strict, new(FindIn))
		case "Note":
			dec, _ := generated[Note](t, tc.name)
			ok = dec([]byte(tc.doc), tc.strict, new(Note))
		case "Kinds":
			dec, _ := generated[Kinds](t, tc.name)
			ok = dec([]byte(tc.doc), tc.strict, new(Kinds))
		}
		if ok != tc.want {
			t.Errorf("%s %s strict=%v: generated decoder took it: %v, want %v", tc.name, tc.doc, tc.strict, ok, tc.want)
		}
	}
	for _, name := range []string{"WithMap", "WithAny", "WithTime", "WithBytes", "WithString", "Embeds", "WithRaw"} {
		if d, e := codec.Generated(name); d != nil || e != nil {
			t.Errorf("%s has a generated codec; its type is the reflective codec's", name)
		}
	}
	_, enc := generated[Kinds](t, "Kinds")
	for _, f := range []float64{math.NaN(), math.Inf(1)} {
		if _, ok := enc(nil, &Kinds{F64: f}); ok {
			t.Errorf("generated encoder encoded %v, which Marshal refuses", f)
		}
	}
	cycle := &Tree{V: 1}
	cycle.Kids = []*Tree{cycle}
	if _, ok := enc(nil, &Kinds{Tree: cycle}); ok {
		t.Error("generated encoder encoded a cycle")
	}
}
