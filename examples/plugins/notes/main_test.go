package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/hosttest"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

func TestNotes(t *testing.T) {
	pt := hosttest.New(t)
	for _, n := range []AddIn{{Text: "pump 3 leaks", Tags: []string{"maint"}}, {Text: "lunch at noon"}, {Text: "gate sticks", Tags: []string{"maint"}}} {
		if _, err := pt.Call("notes.add", n); err != nil {
			t.Fatal(err)
		}
	}
	got, err := hosttest.CallAs[FindOut](pt, "notes.find", FindIn{Tag: "maint"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Notes) != 2 || got.Notes[0].Text != "gate sticks" || got.Notes[1].Text != "pump 3 leaks" {
		t.Fatalf("find maint = %+v", got)
	}
	// The host stored them as the plugin, in its namespace.
	for r, err := range pt.Store().Query(context.Background(), memory.Query{Namespace: Namespace}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Author != "notes" {
			t.Errorf("record author = %q; want notes", r.Author)
		}
	}
	if _, err := pt.Call("notes.add", AddIn{Text: " "}); err == nil {
		t.Error("an empty note was accepted")
	}
}

func TestNotesNeedGrants(t *testing.T) {
	_, err := hosttest.Load(t, hosttest.Grants(wire.Capabilities{MemoryRead: []string{Namespace}}))
	if err == nil || !strings.Contains(err.Error(), `memory_write "notes"`) || strings.Contains(err.Error(), "memory_read") {
		t.Fatalf("load with read-only grants: %v; want an error listing exactly memory_write \"notes\"", err)
	}
}

// TestWASM runs the plugin built to WASM through the agent's host and its
// badger memory.
func TestWASM(t *testing.T) {
	h := wasmtest.NewHost(t, host.Config{})
	p, err := h.Load(context.Background(), host.PluginSpec{
		Name: "notes", Path: wasmtest.Build(t, "."),
		Grants: wire.Capabilities{MemoryRead: []string{Namespace}, MemoryWrite: []string{Namespace}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]func(string) (json.RawMessage, error){}
	for _, tl := range p.Tools() {
		tools[tl.Spec().Name] = func(args string) (json.RawMessage, error) {
			return tl.Call(context.Background(), json.RawMessage(args))
		}
	}
	if _, err := tools["notes.add"](`{"text":"battery at 20%","tags":["power"]}`); err != nil {
		t.Fatal(err)
	}
	out, err := tools["notes.find"](`{"tag":"power"}`)
	if err != nil {
		t.Fatal(err)
	}
	var got FindOut
	if err := json.Unmarshal(out, &got); err != nil || len(got.Notes) != 1 || got.Notes[0].Text != "battery at 20%" {
		t.Fatalf("find = %s, %v", out, err)
	}
	if _, err := tools["notes.add"](`{"text":""}`); !isCode(err, wire.CodeInvalidArgument) {
		t.Errorf("empty note: %v; want invalid_argument", err)
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}
