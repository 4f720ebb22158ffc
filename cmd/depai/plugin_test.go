package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/depai/depai/sdk/wire"
)

// plugin runs `depai plugin args...` in-process.
func plugin(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newPluginCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func mustPlugin(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := plugin(t, args...)
	if err != nil {
		t.Fatalf("depai plugin %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// TestPluginJourney is what a new user does outside this repository:
// scaffold, test, build both ways, inspect and test the artifacts.
func TestPluginJourney(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, "greeter")
	out := mustPlugin(t, "new", "greeter", "--dir", dir)
	if !strings.Contains(out, `created plugin "greeter"`) || !strings.Contains(out, "depai plugin build") {
		t.Errorf("new said:\n%s", out)
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !bytes.Contains(mod, []byte("module greeter")) || !bytes.Contains(mod, []byte("replace github.com/depai/depai => ")) {
		t.Fatalf("go.mod:\n%s (%v)", mod, err)
	}

	goTest := exec.Command("go", "test", "./...")
	goTest.Dir = dir
	if b, err := goTest.CombinedOutput(); err != nil {
		t.Fatalf("go test in the new plugin: %v\n%s", err, b)
	}

	cache := filepath.Join(work, "cache")
	wasmFile, nativeFile := filepath.Join(work, "greeter.wasm"), filepath.Join(work, "greeter-native")
	if out := mustPlugin(t, "build", dir, "-o", wasmFile, "--cache", cache); !strings.Contains(out, "(wasm, built)") {
		t.Errorf("build --wasm said %q", out)
	}
	if out := mustPlugin(t, "build", dir, "--wasm", "-o", wasmFile, "--cache", cache); !strings.Contains(out, "from the cache") {
		t.Errorf("second build said %q; want it served from the cache", out)
	}
	mustPlugin(t, "build", dir, "--native", "-o", nativeFile, "--cache", cache)

	for _, file := range []string{wasmFile, nativeFile} {
		var m wire.Manifest
		out := mustPlugin(t, "inspect", file)
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("inspect %s printed %q: %v", file, out, err)
		}
		if m.Name != "greeter" || m.ABI != wire.ABIVersion || len(m.Tools) != 1 || m.Tools[0].Name != "greeter.greet" {
			t.Errorf("inspect %s: %+v", file, m)
		}
		out = mustPlugin(t, "test", file)
		for _, want := range []string{"ok   load", "ok   manifest", "confined: ", "ok   confinement complete on this kernel", "ok   tool greeter.greet with a zero input", "ok   oversize input is too_large", " 0 failed"} {
			if !strings.Contains(out, want) {
				t.Errorf("test %s lacks %q:\n%s", file, want, out)
			}
		}
	}
	if out := mustPlugin(t, "test", nativeFile); !strings.Contains(out, "ok   restarted after SIGKILL") || !strings.Contains(out, "ok   idle between calls") || !strings.Contains(out, "confined: files: only the plugin") {
		t.Errorf("native test did not run the kill, idle and confinement probes:\n%s", out)
	}
}

func TestPluginTestCatchesACrash(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "crash")
	mustPlugin(t, "build", "testdata/crashplugin", "--native", "-o", bin, "--cache", t.TempDir())
	out, _, err := plugin(t, "test", bin)
	if err == nil || !strings.Contains(err.Error(), "1 check(s) failed") {
		t.Fatalf("err = %v; want one failed check\n%s", err, out)
	}
	if !strings.Contains(out, "FAIL tool crash.first with a zero input: crashed: panic in crash.first") {
		t.Errorf("output lacks the crash:\n%s", out)
	}
}

func TestPluginNewInsideDepaiModule(t *testing.T) {
	repo := t.TempDir()
	if err := os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module github.com/depai/depai\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repo, "plugins", "gnss")
	mustPlugin(t, "new", "gnss", "--dir", dir)
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); !os.IsNotExist(err) {
		t.Errorf("a plugin inside the depai module got its own go.mod (%v)", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if err != nil || !bytes.Contains(b, []byte(`sdk.Tool("gnss.greet"`)) {
		t.Errorf("main.go: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "main_test.go")); err != nil {
		t.Error(err)
	}
}

func TestPluginErrors(t *testing.T) {
	nonEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notPlugin := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho not a plugin\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(data, []byte("just text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"new", "Bad Name"}, `plugin name "Bad Name": want lower-case letters`},
		{[]string{"new", "ok", "--dir", nonEmpty}, "exists and is not empty"},
		{[]string{"new", "ok", "--dir", filepath.Join(t.TempDir(), "ok"), "--depai", t.TempDir()}, "not the root of a github.com/depai/depai checkout"},
		{[]string{"build", "testdata/crashplugin", "--wasm", "--native"}, "exclude each other"},
		{[]string{"build", "no/such/dir"}, "is not a directory"},
		{[]string{"inspect", notPlugin}, "Unrecognized remote plugin message"},
		{[]string{"inspect", "no/such/file"}, "no such file"},
		{[]string{"inspect", data}, "neither a WASM module nor a native executable"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, _, err := plugin(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to contain %q\n%s", err, tc.want, out)
			}
		})
	}
}

// TestPluginCommandsInTheBinary runs inspect and test through the built
// depai binary, on the hello example built both ways.
func TestPluginCommandsInTheBinary(t *testing.T) {
	dir := t.TempDir()
	for _, target := range []string{"wasm", "native"} {
		out := filepath.Join(dir, "hello-"+target)
		mustPlugin(t, "build", "../../examples/plugins/hello", "--"+target, "-o", out, "--cache", filepath.Join(dir, "cache"))
		stdout, stderr, code := depai(t, "", nil, "plugin", "inspect", out)
		var m wire.Manifest
		if code != 0 || json.Unmarshal([]byte(stdout), &m) != nil || m.Name != "hello" {
			t.Fatalf("depai plugin inspect %s: exit %d\n%s\n%s", target, code, stdout, stderr)
		}
		stdout, stderr, code = depai(t, "", nil, "plugin", "test", out)
		if code != 0 || !strings.Contains(stdout, " 0 failed") {
			t.Fatalf("depai plugin test %s: exit %d\n%s\n%s", target, code, stdout, stderr)
		}
	}
}

// TestCheckManifestIsTheHostsCheck: `depai plugin test` refuses what an
// agent would refuse at load (registration errors once slipped through),
// and adds the author-facing checks.
func TestCheckManifestIsTheHostsCheck(t *testing.T) {
	good := wire.Manifest{Name: "p", ABI: wire.ABIVersion, Tools: []wire.ToolDef{{Name: "p.t", Description: "d", Input: json.RawMessage(`{"type":"object"}`)}}}
	if err := checkManifest(good); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*wire.Manifest)
		want string
	}{
		"registration errors": {func(m *wire.Manifest) { m.Errors = []string{"sdk.Tool p.x: In has a chan field"} }, "registration failed: sdk.Tool p.x"},
		"bad effect":          {func(m *wire.Manifest) { m.Tools[0].Effect = "teleport" }, `effect "teleport"`},
		"bad interval":        {func(m *wire.Manifest) { m.Sensors = []wire.SensorDef{{Name: "s", Interval: "1ns"}} }, `interval "1ns"`},
		"no description":      {func(m *wire.Manifest) { m.Tools[0].Description = "" }, "has no description"},
		"no name":             {func(m *wire.Manifest) { m.Name = "" }, "no name"},
	} {
		m := good
		m.Tools = slices.Clone(good.Tools)
		tc.edit(&m)
		if err := checkManifest(m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tc.want)
		}
	}
}
