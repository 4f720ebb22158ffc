package build_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/host/build"
)

// tinyPlugin writes a standalone module (std only, so it builds fast) that
// stands in for a plugin package: build only cares that it is a main package.
func tinyPlugin(t *testing.T, msg string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	files := map[string]string{
		"go.mod":  "module tiny\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(" + `"` + msg + `"` + ") }\n",
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestNativeBuildIsCachedByContent(t *testing.T) {
	ctx := context.Background()
	dir, cache := tinyPlugin(t, "one"), filepath.Join(t.TempDir(), "cache")
	first, err := build.Plugin(ctx, build.Options{Dir: dir, Target: build.Native, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if first.Cached {
		t.Error("first build reported as cached")
	}
	if out, err := exec.Command(first.Path).Output(); err != nil || string(out) != "one\n" {
		t.Fatalf("built binary says %q, %v", out, err)
	}
	again, err := build.Plugin(ctx, build.Options{Dir: dir, Target: build.Native, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Path != first.Path || again.Key != first.Key {
		t.Errorf("unchanged sources: %+v, first %+v; want the cached artifact", again, first)
	}
	// Touching a source file without changing it keeps the key: the
	// plugin's own files count by content, not by modification time.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "main.go"), later, later); err != nil {
		t.Fatal(err)
	}
	touched, err := build.Plugin(ctx, build.Options{Dir: dir, Target: build.Native, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !touched.Cached || touched.Key != first.Key {
		t.Errorf("touched, unchanged sources: %+v, first %+v; want the cached artifact", touched, first)
	}
	// Changing a source file changes the key and the artifact.
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"two\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := build.Plugin(ctx, build.Options{Dir: dir, Target: build.Native, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if changed.Cached || changed.Key == first.Key {
		t.Errorf("changed sources: %+v; want a fresh build under a new key", changed)
	}
	fi, err := os.Stat(cache)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
}

// warnings is a logger for build.Options and what it was told.
func warnings() (*slog.Logger, *strings.Builder) {
	var b strings.Builder
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelWarn})), &b
}

func TestWASMBuildAndOut(t *testing.T) {
	dir := tinyPlugin(t, "w")
	out := filepath.Join(t.TempDir(), "tiny.wasm")
	logger, logged := warnings()
	res, err := build.Plugin(context.Background(), build.Options{Dir: dir, Target: build.WASM, CacheDir: t.TempDir(), Out: out, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	// Not an SDK plugin: nothing to describe, and the author is told.
	if !strings.Contains(logged.String(), "ships without its manifest section") {
		t.Errorf("no warning of the missing manifest section; logged %q", logged)
	}
	if res.Path != out {
		t.Errorf("path %s, want %s", res.Path, out)
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) < 8 || string(b[:4]) != "\x00asm" {
		t.Fatalf("%s is not a WASM module (%d bytes, %v)", out, len(b), err)
	}
}

func TestBuildErrors(t *testing.T) {
	broken := tinyPlugin(t, "x")
	if err := os.WriteFile(filepath.Join(broken, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts build.Options
		want string
	}{
		{"bad target", build.Options{Dir: broken, Target: "jvm"}, `target "jvm"`},
		{"no dir", build.Options{Dir: filepath.Join(broken, "nope")}, "is not a directory"},
		{"compile error", build.Options{Dir: broken, Target: build.Native, CacheDir: t.TempDir()}, "undefined: undefinedThing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build.Plugin(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want it to contain %q", err, tc.want)
			}
		})
	}
}

func ExamplePlugin() {
	res, err := build.Plugin(context.Background(), build.Options{
		Dir:    "examples/plugins/hello",
		Target: build.WASM,
	})
	if err != nil {
		return
	}
	_ = res.Path // hand this to the wasm transport
}

// TestEditInModuleRebuilds: a plugin that imports another package of its
// own module (as the examples import the SDK) is rebuilt when that package
// changes — a stale artifact would run old code against a new host.
func TestEditInModuleRebuilds(t *testing.T) {
	ctx := context.Background()
	mod := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module m\n\ngo 1.26\n")
	write("lib/lib.go", "package lib\n\nconst Msg = \"one\"\n")
	write("plugin/main.go", "package main\n\nimport \"m/lib\"\n\nfunc main() { println(lib.Msg) }\n")
	cache := filepath.Join(t.TempDir(), "cache")
	opts := build.Options{Dir: filepath.Join(mod, "plugin"), Target: build.Native, CacheDir: cache}
	first, err := build.Plugin(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	write("lib/lib.go", "package lib\n\nconst Msg = \"two, longer\"\n")
	second, err := build.Plugin(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if second.Cached || second.Key == first.Key {
		t.Fatalf("edit in the module's lib reused the artifact: %+v", second)
	}
	out, err := exec.Command(second.Path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "two, longer") {
		t.Errorf("rebuilt plugin says %q, %v", out, err)
	}
}

// A plugin whose generated codecs do not compile (its tool types are
// declared inside a function) is built with the reflective codec, and the
// author is told; it was silent.
func TestBuildWarnsOfUngeneratedCodecs(t *testing.T) {
	logger, logged := warnings()
	_, err := build.Plugin(context.Background(), build.Options{Dir: "../wasm/testdata/codecslocal", CacheDir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "ships with the reflective codec") || strings.Contains(logged.String(), "manifest section") {
		t.Errorf("logged %q, want only the warning of the reflective codec", logged)
	}
}
