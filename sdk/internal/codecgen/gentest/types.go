// Package gentest holds the example plugins' tool types, and others that
// reach every branch of sdk/internal/codecgen, with the codecs it generates
// for them (codecs.go, kept current by TestGeneratedIsCurrent), so they can
// be fuzzed against sdk/internal/codec and encoding/json natively.
package gentest

import (
	"encoding/json"
	"reflect"
	"time"

	"github.com/depai/depai/sdk/internal/codecgen"
)

// GreetIn and GreetOut are examples/plugins/hello's.
type GreetIn struct {
	Name string `json:"name" jsonschema:"who to greet"`
}

type GreetOut struct {
	Greeting string `json:"greeting"`
}

// AddIn, Note, FindIn and FindOut are examples/plugins/notes'.
type AddIn struct {
	Text string   `json:"text" jsonschema:"the note"`
	Tags []string `json:"tags,omitempty" jsonschema:"labels to find it by"`
}

type Note struct {
	ID   string   `json:"id"`
	Text string   `json:"text"`
	Tags []string `json:"tags,omitempty"`
}

type FindIn struct {
	Tag   string `json:"tag,omitempty" jsonschema:"only notes with this tag"`
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many (default 10)"`
}

type FindOut struct {
	Notes []Note `json:"notes"`
}

// Echo, Size, Hog, None, Blob and Tick are examples/plugins/chaos'.
type Echo struct {
	Text  string   `json:"text"`
	Count int      `json:"count,omitempty"`
	Tags  []string `json:"tags,omitempty"`
}

type Size struct {
	Bytes int `json:"bytes"`
}

type Hog struct {
	MB int `json:"mb,omitempty"`
}

type None struct{}

type Blob struct {
	Data string `json:"data"`
}

type Tick struct {
	N int `json:"n"`
}

// Kinds has a field of every scalar kind the generator covers, named
// types, pointers, nesting and field names that need escaping or folding.
type Kinds struct {
	B        bool    `json:"b"`
	I8       int8    `json:"i8,omitempty"`
	I16      int16   `json:"i16"`
	I32      int32   `json:"i32,omitempty"`
	I64      int64   `json:"i64"`
	U        uint    `json:"u,omitempty"`
	U8       uint8   `json:"u8"`
	U16      uint16  `json:"u16,omitempty"`
	U32      uint32  `json:"u32"`
	U64      uint64  `json:"u64,omitempty"`
	F32      float32 `json:"f32"`
	F64      float64 `json:"f64,omitempty"`
	Level    Level   `json:"level,omitempty"`
	Untagged string
	HTML     string      `json:"<a&b>"`
	P        *int        `json:"p"`
	PS       *Note       `json:"ps,omitempty"`
	Names    Names       `json:"names"`
	Grid     [][]float64 `json:"grid,omitempty"`
	OK       *bool       `json:"ok,omitempty"`
	Tree     *Tree       `json:"tree,omitempty"`
	skip     int
	Dash     int `json:"-"`
}

// Level is a named string with a method that is no JSON method.
type Level string

func (l Level) String() string { return string(l) }

// Names is a named slice.
type Names []string

// Tree contains itself.
type Tree struct {
	V    int     `json:"v"`
	Kids []*Tree `json:"kids,omitempty"`
}

// Left to the reflective codec: the generator covers none of these.
type (
	WithMap struct {
		M map[string]int `json:"m"`
	}
	WithAny struct {
		A any `json:"a"`
	}
	WithTime struct {
		T time.Time `json:"t"`
	}
	WithBytes struct {
		B []byte `json:"b"`
	}
	WithString struct {
		N int `json:"n,string"`
	}
	Embeds struct {
		Blob
		X int `json:"x"`
	}
	WithRaw struct {
		R json.RawMessage `json:"r"`
	}
)

// Tools names each type as a tool whose input and output it is.
var Tools = []codecgen.Tool{
	tool[GreetIn]("GreetIn"), tool[GreetOut]("GreetOut"),
	tool[AddIn]("AddIn"), tool[Note]("Note"), tool[FindIn]("FindIn"), tool[FindOut]("FindOut"),
	tool[Echo]("Echo"), tool[Size]("Size"), tool[Hog]("Hog"), tool[None]("None"), tool[Blob]("Blob"), tool[Tick]("Tick"),
	tool[Kinds]("Kinds"), tool[Tree]("Tree"), tool[Names]("Names"), tool[*Note]("*Note"), tool[[]Note]("[]Note"),
	tool[WithMap]("WithMap"), tool[WithAny]("WithAny"), tool[WithTime]("WithTime"), tool[WithBytes]("WithBytes"),
	tool[WithString]("WithString"), tool[Embeds]("Embeds"), tool[WithRaw]("WithRaw"),
}

// Config is where codecs.go is generated.
var Config = codecgen.Config{Package: "gentest", Self: "github.com/depai/depai/sdk/internal/codecgen/gentest", Bridge: "github.com/depai/depai/sdk/internal/codec"}

func tool[T any](name string) codecgen.Tool {
	return codecgen.Tool{Name: name, In: reflect.TypeFor[T](), Out: reflect.TypeFor[T]()}
}
