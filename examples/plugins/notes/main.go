// Command notes keeps short notes in the agent's shared memory: notes.add
// writes one, notes.find lists the newest, optionally by tag. It shows a
// plugin using a host capability: it requests read and write access to the
// "notes" namespace, and the agent's config must grant it.
package main

import (
	"context"
	"strings"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

// Namespace is where notes live.
const Namespace = "notes"

// AddIn is notes.add's input.
type AddIn struct {
	Text string   `json:"text" jsonschema:"the note"`
	Tags []string `json:"tags,omitempty" jsonschema:"labels to find it by"`
}

// Note is a stored note.
type Note struct {
	ID   string   `json:"id"`
	Text string   `json:"text"`
	Tags []string `json:"tags,omitempty"`
}

// FindIn is notes.find's input.
type FindIn struct {
	Tag   string `json:"tag,omitempty" jsonschema:"only notes with this tag"`
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many (default 10)"`
}

// FindOut is notes.find's result, newest first.
type FindOut struct {
	Notes []Note `json:"notes"`
}

func init() {
	sdk.Plugin("notes", "0.1.0")
	sdk.Requests(wire.Capabilities{MemoryRead: []string{Namespace}, MemoryWrite: []string{Namespace}})
	sdk.Tool("notes.add", "Saves a note.", add, sdk.Writes())
	sdk.Tool("notes.find", "Lists the newest notes, optionally only those with a tag.", find)
}

func add(ctx context.Context, in AddIn) (Note, error) {
	text := strings.TrimSpace(in.Text)
	if text == "" {
		return Note{}, sdk.Errorf(wire.CodeInvalidArgument, "text is empty; give the note's text")
	}
	recs, err := sdk.MemoryPut(ctx, sdk.Record{Namespace: Namespace, Kind: "observation", Text: text, Tags: in.Tags})
	if err != nil {
		return Note{}, err
	}
	return Note{ID: recs[0].ID, Text: text, Tags: in.Tags}, nil
}

func find(ctx context.Context, in FindIn) (FindOut, error) {
	q := sdk.Query{Namespace: Namespace, Limit: in.Limit}
	if q.Limit <= 0 {
		q.Limit = 10
	}
	if in.Tag != "" {
		q.Tags = []string{in.Tag}
	}
	recs, err := sdk.MemoryQuery(ctx, q)
	if err != nil {
		return FindOut{}, err
	}
	out := FindOut{Notes: make([]Note, 0, len(recs))}
	for _, r := range recs {
		out.Notes = append(out.Notes, Note{ID: r.ID, Text: r.Text, Tags: r.Tags})
	}
	return out, nil
}

func main() { sdk.Main() }
