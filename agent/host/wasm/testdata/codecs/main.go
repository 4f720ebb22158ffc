// Command codecs has tools whose types the build generates codecs for, and
// one whose output it leaves to the reflective codec (a map), for
// TestGeneratedCodecs. It names codec and slices at package level, as a
// plugin may.
package main

import (
	"context"

	"github.com/depai/depai/sdk"
)

// Item is codecs.echo's input and output.
type Item struct {
	Name  string   `json:"name"`
	Count int      `json:"count,omitempty"`
	Tags  []string `json:"tags,omitempty"`
	Ratio *float64 `json:"ratio,omitempty"`
}

// Counts is codecs.count's output.
type Counts struct {
	ByTag map[string]int `json:"by_tag"`
}

// Package-level names that the generated file's imports must not clash
// with: the build would fail and ship without the codecs.
var codec, slices = "codec", "slices"

func init() {
	sdk.Plugin("codecs", "0.1.0")
	sdk.Tool("codecs.echo", "Returns its input.", func(_ context.Context, in Item) (Item, error) { return in, nil })
	sdk.Tool("codecs.count", "Counts its tags.", func(_ context.Context, in Item) (Counts, error) {
		c := Counts{ByTag: map[string]int{}}
		for _, t := range in.Tags {
			c.ByTag[t]++
		}
		return c, nil
	})
}

func main() { sdk.Main() }
