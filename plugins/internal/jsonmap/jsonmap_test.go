package jsonmap

import (
	"encoding/json"
	"testing"
)

func TestDecodeAllOrNothing(t *testing.T) {
	fields := []Field{{Name: "v", Path: "a.b", Unit: "V"}, {Name: "t", Path: "t", Optional: true}}
	vs, err := Decode([]byte(`{"a":{"b":1.5}}`), fields)
	if err != nil || len(vs) != 1 || vs[0] != (Value{Name: "v", Value: 1.5, Unit: "V"}) {
		t.Fatalf("%+v, %v", vs, err)
	}
	if vs, err := Decode([]byte(`{"a":{"b":1.5},"t":"hot"}`), fields); KindOf(err) != KindNotNumber || vs != nil {
		t.Fatalf("a bad optional field: %+v, %v", vs, err)
	}
	if vs, err := Decode([]byte(`{"items":[{"n":1},{"n":2}]}`), []Field{{Name: "second", Path: "items.1.n"}}); err != nil || vs[0].Value != 2 {
		t.Fatalf("array index: %+v, %v", vs, err)
	}
	if _, err := Decode([]byte(`{"items":[{"n":1}]}`), []Field{{Name: "x", Path: "items.1.n"}}); KindOf(err) != KindMissingField {
		t.Fatalf("index out of range: %v", err)
	}
	if err := ValidFields([]Field{{Name: "a"}, {Name: "a"}}); err == nil {
		t.Fatal("duplicate names accepted")
	}
}

// FuzzDecode: no document panics; values come out only of valid JSON, and
// never with an error.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"battery":{"voltage":24.5},"temp":31}`), "battery.voltage")
	f.Add([]byte(`12.5`), "")
	f.Add([]byte(`{"a":[1,2]}`), "a")
	f.Add([]byte("\xff\xfe"), "x")
	f.Fuzz(func(t *testing.T, doc []byte, path string) {
		vs, err := Decode(doc, []Field{{Name: "x", Path: path}})
		if err == nil && !json.Valid(doc) {
			t.Fatalf("values %v from invalid JSON %q", vs, doc)
		}
		if err != nil && vs != nil {
			t.Fatal("values with an error")
		}
	})
}
