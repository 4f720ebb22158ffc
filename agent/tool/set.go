package tool

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/depai/depai/sdk/schema"
)

// Set is the tools one agent can use, each with its compiled input schema.
// It is safe for concurrent use; plugins add and remove tools while the agent runs.
type Set struct {
	mu    sync.RWMutex
	tools map[string]entry
}

type entry struct {
	tool  Tool
	input *schema.Schema
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{tools: map[string]entry{}} }

// Add registers tools. A tool whose name is taken or whose input schema does
// not parse is an error naming it; the set is then unchanged.
func (s *Set) Add(tools ...Tool) error {
	add := make(map[string]entry, len(tools))
	for _, t := range tools {
		spec := t.Spec()
		if spec.Name == "" {
			return fmt.Errorf("tool from %q has no name", spec.Source)
		}
		input := spec.InputSchema
		if len(input) == 0 {
			input = json.RawMessage(`{"type":"object"}`)
		}
		sch, err := schema.Parse(input)
		if err != nil {
			return fmt.Errorf("tool %s: input schema: %w", spec.Name, err)
		}
		if _, dup := add[spec.Name]; dup {
			return fmt.Errorf("tool %s: registered twice", spec.Name)
		}
		add[spec.Name] = entry{tool: t, input: sch}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range add {
		if old, taken := s.tools[name]; taken {
			return fmt.Errorf("tool %s: already provided by %s", name, sourceOf(old.tool))
		}
	}
	for name, e := range add {
		s.tools[name] = e
	}
	return nil
}

// RemoveSource drops every tool whose Spec().Source is source, as when a
// plugin is unloaded, and reports how many went.
func (s *Set) RemoveSource(source string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for name, e := range s.tools {
		if e.tool.Spec().Source == source {
			delete(s.tools, name)
			n++
		}
	}
	return n
}

// Remove drops the named tool and reports whether it was there.
func (s *Set) Remove(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tools[name]
	delete(s.tools, name)
	return ok
}

// Get returns the named tool.
func (s *Set) Get(name string) (Tool, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.tools[name]
	return e.tool, ok
}

// Specs lists the tools sorted by name.
func (s *Set) Specs() []Spec {
	s.mu.RLock()
	specs := make([]Spec, 0, len(s.tools))
	for _, e := range s.tools {
		specs = append(specs, e.tool.Spec())
	}
	s.mu.RUnlock()
	slices.SortFunc(specs, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	return specs
}

// Len is the number of tools.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tools)
}

// Call validates args against the tool's input schema and runs it. Unknown
// tools and invalid arguments are *Error values with code invalid_argument or
// not_found whose message says what was expected, so a model can correct itself.
func (s *Set) Call(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	s.mu.RLock()
	e, ok := s.tools[name]
	s.mu.RUnlock()
	if !ok {
		return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no tool %q; available: %s", name, strings.Join(s.names(), ", "))}
	}
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	if err := e.input.Validate(args); err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("arguments for %s %v; expected schema %s", name, err, e.input.JSON())}
	}
	return e.tool.Call(ctx, args)
}

func (s *Set) names() []string {
	specs := s.Specs()
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.Name
	}
	return names
}

func sourceOf(t Tool) string {
	if src := t.Spec().Source; src != "" {
		return src
	}
	return "builtin"
}
