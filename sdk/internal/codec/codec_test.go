package codec

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/sdk/schema"
	"github.com/depai/depai/sdk/wire"
)

type inner struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
}

type embedded struct {
	E1     string `json:"e1,omitempty"`
	Shadow int    `json:"shadow,omitempty"`
	Deep   string `json:"deep,omitempty"`
}

// doc has only fields whose schema (sdk/schema) matches their JSON, so all
// three of schema, encoding/json and the codec can be held to each other.
type doc struct {
	embedded
	Text   string          `json:"text"`
	Count  int             `json:"count,omitempty"`
	Small  int8            `json:"small,omitempty"`
	U      uint16          `json:"u,omitempty"`
	F      float64         `json:"f,omitempty"`
	F32    float32         `json:"f32,omitempty"`
	OK     bool            `json:"ok,omitempty"`
	Tags   []string        `json:"tags,omitempty"`
	Ptr    *inner          `json:"ptr,omitempty"`
	Inner  inner           `json:"inner,omitzero"`
	M      map[string]int  `json:"m,omitempty"`
	Any    any             `json:"any,omitempty"`
	Raw    json.RawMessage `json:"raw,omitempty"`
	When   time.Time       `json:"when,omitzero"`
	Arr    [2]int          `json:"arr,omitzero"`
	Shadow string          `json:"shadow,omitempty"`
	Items  []inner         `json:"items,omitempty"`
	Req    *string         `json:"req"`
}

type level int

func (l level) MarshalText() ([]byte, error) { return []byte("L" + string(rune('0'+l%10))), nil }
func (l *level) UnmarshalText(b []byte) error {
	if len(b) != 2 || b[0] != 'L' {
		return &TypeError{msg: "bad level"}
	}
	*l = level(b[1] - '0')
	return nil
}

type ptrMarshal struct{ N int }

func (p *ptrMarshal) MarshalJSON() ([]byte, error) { return []byte(` { "n" : [ 1, "<&>" ] } `), nil }

// wide adds what has no faithful schema: ",string", []byte, int keys,
// TextMarshaler values and keys, json.Number, Marshalers.
type wide struct {
	doc
	Quoted  int              `json:"quoted,omitempty,string"`
	QStr    string           `json:"qs,omitempty,string"`
	QPtr    *float64         `json:"qp,omitempty,string"`
	Bytes   []byte           `json:"bytes,omitempty"`
	IntKeys map[int]string   `json:"ik,omitempty"`
	UKeys   map[uint8]bool   `json:"uk,omitempty"`
	Level   level            `json:"level,omitempty"`
	LKeys   map[level]int    `json:"lk,omitempty"`
	Num     json.Number      `json:"num,omitempty"`
	PM      ptrMarshal       `json:"pm"`
	PMs     []ptrMarshal     `json:"pms,omitempty"`
	Nested  map[string][]any `json:"nested,omitempty"`
	Iface   interface{ M() } `json:"iface,omitempty"`
	Ignored string           `json:"-"`
	Dash    string           `json:"-,"`
	NoTag   string
	unexp   string
	Untag   *inner
}

var seeds = []string{
	`{"text":"hi","req":null}`,
	`{"text":"the quick brown fox jumps over the lazy dog twice","count":7,"tags":["alpha","beta","gam"],"req":"x"}`,
	`{"text":"a\u00e9\ud83d\ude00\n\t\"<>&\u2028","req":"","count":1.0,"small":-128,"u":65535,"f":1e-7,"f32":3.4e38}`,
	`{"text":"","req":"r","ptr":{"a":2,"b":"x"},"inner":{"a":0},"m":{"k":1,"z":-2},"any":{"x":[1,"2",true,null]},"raw":[ 1 , 2 ],"when":"2024-01-02T03:04:05.123456789+02:00","arr":[1,2]}`,
	`{"text":"x","req":"y","e1":"e","shadow":"s","deep":"d","items":[{"a":1},{"a":2,"b":"c"}]}`,
	`{"TEXT":"case","Req":null}`,
	`{"text":"x","req":null,"quoted":"12","qs":"\"q\"","qp":"1.5","bytes":"aGVsbG8=","ik":{"1":"a","-2":"b"},"uk":{"255":true},"level":"L3","lk":{"L1":1},"num":"1.5e3","pm":{},"nested":{"a":[{},[]]},"NoTag":"n","-":"dash","Untag":{"a":1}}`,
	`{"text":"x","req":null,"count":1e2,"extra":1}`,
	`{"text":1}`, `{"text":"x"}`, `[1,2]`, `null`, `{"text":"x","req":null,"arr":[1,2,3]}`,
	`{"text":"\ud800","req":"\udc00\ud800x"}`, "{\"text\":\"\xff\xfe\",\"req\":null}",
	`{"text":"x","req":null,"small":128}`, `{"text":"x","req":null,"u":-1}`, `{"text":"x","req":null,"f":-0}`,
	`{"text":"x","req":null,"text":"y","inner":{"a":1},"inner":{"b":"z"},"m":{"a":1},"m":{"b":2},"tags":["a","b"],"tags":["c"]}`,
	`{"records":[{"id":"01J","seq":3,"namespace":"n","kind":"k","time":"2026-12-02T03:04:05.000000006Z","data":{"a":[1,2]},"tags":["x"],"expires_at":"2027-01-01T00:00:00+01:00"}]}`,
	`{"status":200,"header":{"Content-Type":["text/plain"]},"body":"aGk="}`,
	`{"method":"GET","url":"https://x","timeout":1000000000}`,
	`{"level":"info","msg":"m","attrs":{"k":1.5,"n":null,"l":[true]}}`,
	`{"name":"p","version":"1","abi":1,"tools":[{"name":"t","description":"d","input":{"type":"object"},"effect":"write"}],"requests":{"memory_read":["a"],"clock":true},"actuation":{"stop":true}}`,
	`{"code":"denied","message":"no","retryable":true}`,
}

func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	sch, err := schema.For[doc]()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstJSON[doc](t, data)
		checkAgainstJSON[wide](t, data)
		checkAgainstJSON[any](t, data)
		checkAgainstJSON[map[string]any](t, data)
		checkAgainstJSON[[]float64](t, data)
		// What the SDK sends and receives through the host.
		checkAgainstJSON[wire.MemoryRecords](t, data)
		checkAgainstJSON[wire.HTTPResponse](t, data)
		checkAgainstJSON[wire.HTTPRequest](t, data)
		checkAgainstJSON[wire.LogArgs](t, data)
		checkAgainstJSON[wire.Manifest](t, data)
		checkAgainstJSON[wire.Error](t, data)
		// The schema's verdict: what it admits, strict decoding decodes as
		// lenient decoding does (which checkAgainstJSON held to
		// encoding/json; both fail where the type itself refuses a value
		// its schema admits, as time.Time does ""); what it refuses,
		// strict decoding refuses.
		var lenient, strict doc
		lerr, serr := Unmarshal(data, &lenient), UnmarshalStrict(data, &strict)
		if sch.Validate(data) == nil {
			if (lerr == nil) != (serr == nil) {
				t.Fatalf("schema admits %q; codec: %v, strict: %v", data, lerr, serr)
			}
			if !reflect.DeepEqual(lenient, strict) {
				t.Fatalf("%q: strict decoded %#v, lenient %#v", data, strict, lenient)
			}
		} else if serr == nil && len(bytes.TrimSpace(data)) > 0 {
			t.Fatalf("schema refuses %q (%v); strict decoding accepted it as %#v", data, sch.Validate(data), strict)
		}
	})
}

// checkAgainstJSON: whatever encoding/json decodes into T the codec
// decodes to the same value, and both encode that value to the same bytes;
// the codec accepts more only for integral numbers with a fraction or
// exponent, or -0 for an unsigned integer.
func checkAgainstJSON[T any](t *testing.T, data []byte) {
	t.Helper()
	var want, got T
	werr := json.Unmarshal(data, &want)
	gerr := Unmarshal(data, &got)
	switch {
	case werr == nil && gerr != nil:
		t.Fatalf("%T %q: encoding/json decodes it, the codec: %v", want, data, gerr)
	case werr != nil && gerr == nil:
		if !bytes.ContainsAny(data, ".eE") && !bytes.Contains(data, []byte("-0")) {
			t.Fatalf("%T %q: encoding/json refuses it (%v), the codec decoded %#v", want, data, werr, got)
		}
		return
	case werr != nil:
		return
	}
	if !equal(want, got) {
		t.Fatalf("%T %q:\ncodec        %#v\nencoding/json %#v", want, data, got, want)
	}
	wb, werr := json.Marshal(want)
	gb, gerr := Marshal(want)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(wb, gb) {
		t.Fatalf("%T encode %#v:\ncodec         %s (%v)\nencoding/json %s (%v)", want, want, gb, gerr, wb, werr)
	}
}

// equal is DeepEqual, with times compared as instants and encodings
// (time.Time keeps a location pointer and monotonic reading).
func equal(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb) && reflect.DeepEqual(normal(a), normal(b))
}

func normal(v any) any {
	switch x := v.(type) {
	case doc:
		x.When = time.Time{}
		return x
	case wide:
		x.When = time.Time{}
		return x
	}
	return v
}

func TestMarshalMatchesEncodingJSON(t *testing.T) {
	s := "str"
	fl := 2.5
	values := []any{
		nil, true, 0, -1, uint64(math.MaxUint64), 1.5, float32(0.1), 1e21, 1e-7, -0.0, 123456789.0, float32(1e-7),
		"", "<a href=\"x\">&amp;</a>\u2028\u2029\x00\x1f\x7f\xff", []byte(nil), []byte("hi"), []int(nil), []int{}, [0]int{},
		map[string]any(nil), map[string]any{"b": 1, "a": []any{nil, "x"}}, map[int]string{10: "a", 2: "b", -1: "c"},
		map[level]int{1: 1, 2: 2}, &s, (*int)(nil), json.RawMessage(`{ "a" : 1 }`), json.RawMessage(nil),
		doc{Text: "t", Req: &s, When: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), Raw: json.RawMessage(` [1, 2] `)},
		wide{Quoted: 5, QStr: "<q>", QPtr: &fl, Bytes: []byte{0, 1, 2}, Level: 3, PMs: []ptrMarshal{{1}}, Num: "12"},
		&wide{PM: ptrMarshal{1}}, []ptrMarshal{{1}}, [2]ptrMarshal{}, struct{ A, B int }{1, 2},
		struct {
			X int `json:"x,omitempty"`
			Y any `json:",omitzero"`
		}{},
	}
	for _, v := range values {
		want, werr := json.Marshal(v)
		got, gerr := Marshal(v)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(want, got) {
			t.Errorf("Marshal(%#v):\ncodec         %s (%v)\nencoding/json %s (%v)", v, got, gerr, want, werr)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), make(chan int), func() {}, map[[2]int]int{{1, 2}: 3}} {
		if _, err := Marshal(v); err == nil {
			t.Errorf("Marshal(%T) succeeded; encoding/json refuses it", v)
		}
	}
	type cyc struct{ Next *cyc }
	c := &cyc{}
	c.Next = c
	if _, err := Marshal(c); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("Marshal(cycle) = %v; want a cycle error", err)
	}
}

// TestStrict: what strict decoding refuses, with errors naming the field.
func TestStrict(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"req":null}`, `missing property "text"`},
		{`{"text":"x"}`, `missing property "req"`},
		{`{"text":"x","req":null,"nope":1}`, `unknown property "nope"`},
		{`{"TEXT":"x","req":null}`, `unknown property "TEXT"`},
		{`{"text":null,"req":null}`, `null for string at text`},
		{`{"text":"x","req":null,"inner":{"a":null}}`, `null for int at inner.a`},
		{`{"text":"x","req":null,"arr":[1]}`, `1 items for [2]int`},
		{`{"text":"x","req":null,"arr":[1,2,3]}`, `more than 2 items`},
		{`{"text":"x","req":null,"count":1.5}`, `cannot unmarshal number 1.5 into Go struct field count of type int`},
		{`{"text":"x","req":null,"small":200}`, `number 200 into Go struct field small of type int8`},
	} {
		var d doc
		err := UnmarshalStrict([]byte(tc.doc), &d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UnmarshalStrict(%s) = %v; want %q", tc.doc, err, tc.want)
		}
	}
	var d doc
	if err := UnmarshalStrict([]byte(`{"text":"x","req":"r","count":2e1,"ptr":null,"tags":null}`), &d); err != nil || d.Text != "x" || d.Count != 20 {
		t.Errorf("UnmarshalStrict = %v, %+v", err, d)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	var d doc
	for _, in := range []string{``, ` `, `{`, `{"text":"x",}`, `{"text":"x"} x`, `[1,]`, `"\x"`, "\"\x01\"", `01`, `1.`, `-`, `tru`, `{"a" 1}`} {
		if err := Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("Unmarshal(%q) succeeded", in)
		}
	}
	if err := Unmarshal([]byte(`{}`), d); err == nil {
		t.Error("Unmarshal into a non-pointer succeeded")
	}
	if err := Unmarshal([]byte(strings.Repeat("[", 10001)+strings.Repeat("]", 10001)), new(any)); err == nil || !strings.Contains(err.Error(), "max depth") {
		t.Errorf("deep nesting = %v", err)
	}
}
