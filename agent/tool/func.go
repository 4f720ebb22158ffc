package tool

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/depai/depai/sdk/schema"
)

// Func is a Tool backed by a typed Go function; its input and output schemas
// are derived from In and Out.
type Func[In, Out any] struct {
	spec Spec
	fn   func(ctx context.Context, in In) (Out, error)
}

var _ Tool = (*Func[struct{}, struct{}])(nil)

// New returns a typed tool. The error reports an In or Out that has no JSON
// Schema (channels, funcs, maps with non-string keys).
func New[In, Out any](name, description string, effect Effect, fn func(ctx context.Context, in In) (Out, error)) (*Func[In, Out], error) {
	in, err := schema.For[In]()
	if err != nil {
		return nil, fmt.Errorf("tool %s: input: %w", name, err)
	}
	out, err := schema.For[Out]()
	if err != nil {
		return nil, fmt.Errorf("tool %s: output: %w", name, err)
	}
	return &Func[In, Out]{
		spec: Spec{Name: name, Description: description, InputSchema: in.JSON(), OutputSchema: out.JSON(), Effect: effect, Source: "builtin"},
		fn:   fn,
	}, nil
}

// Spec describes the tool.
func (f *Func[In, Out]) Spec() Spec { return f.spec }

// Call decodes args into In, runs the function and encodes its result.
func (f *Func[In, Out]) Call(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	var in In
	if len(args) > 0 {
		if err := json.Unmarshal(args, &in); err != nil {
			return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("%s: arguments: %v", f.spec.Name, err)}
		}
	}
	out, err := f.fn(ctx, in)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%s: encode result: %w", f.spec.Name, err)
	}
	return b, nil
}
