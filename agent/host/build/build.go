// Package build turns a plugin's Go package directory into a loadable
// artifact — a wasip1 reactor module or a native process plugin — with the
// go command, and caches the result by a hash of the sources, so an agent
// config may name a package directory and pay for the build once. A WASM
// plugin ships with its manifest in a custom section (wire.ManifestSection),
// read at build time from the plugin itself, and built without the SDK's
// schema derivation (SectionTag): smaller, and started without asking it.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Targets.
const (
	WASM   = "wasm"   // GOOS=wasip1 GOARCH=wasm -buildmode=c-shared
	Native = "native" // the host's own GOOS/GOARCH
)

// Options says what to build.
type Options struct {
	Dir    string // the plugin's main package directory
	Target string // WASM or Native; empty: WASM
	// Out, if set, is where the artifact is copied; otherwise the cached
	// file's path is returned.
	Out string
	// CacheDir holds built artifacts by content hash. Empty: the user cache
	// directory's depai/plugins.
	CacheDir string
	// Go is the go command. Empty: "go" from PATH.
	Go string
	// Logger gets a build's warnings: a WASM plugin that ships without
	// its manifest section or without generated codecs still works, but
	// starts or calls slower, and the author should know why. Nil:
	// slog.Default().
	Logger *slog.Logger
}

// Result says what Plugin produced.
type Result struct {
	Path   string // the artifact: Options.Out, or the file in the cache
	Key    string // the content hash it is cached under
	Cached bool   // no build ran
}

// Plugin builds the package in opts.Dir unless an artifact with the same
// key is cached. The key hashes the target, the go toolchain, every regular
// file under Dir (except hidden ones and testdata) and the enclosing
// module's go.mod and go.sum. Code outside Dir that the plugin imports from
// its own module is part of the key by name, size and modification time;
// code reached through a local replace is not, so rebuild such a plugin by
// removing the cached file.
func Plugin(ctx context.Context, opts Options) (Result, error) {
	if opts.Target == "" {
		opts.Target = WASM
	}
	if opts.Target != WASM && opts.Target != Native {
		return Result{}, fmt.Errorf("build: target %q: want %q or %q", opts.Target, WASM, Native)
	}
	if opts.Go == "" {
		opts.Go = "go"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return Result{}, fmt.Errorf("build: %s: %w", opts.Dir, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return Result{}, fmt.Errorf("build: %s is not a directory", opts.Dir)
	}
	if opts.CacheDir == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return Result{}, fmt.Errorf("build: no cache directory: %w", err)
		}
		opts.CacheDir = filepath.Join(uc, "depai", "plugins")
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("build: cache: %w", err)
	}
	key, err := hashSources(ctx, opts, dir)
	if err != nil {
		return Result{}, err
	}
	name := filepath.Base(dir) + "-" + key[:16]
	if opts.Target == WASM {
		name += ".wasm"
	}
	cached := filepath.Join(opts.CacheDir, name)
	res := Result{Path: cached, Key: key}
	if _, err := os.Stat(cached); err == nil {
		res.Cached = true
	} else if err := goBuild(ctx, opts, dir, cached); err != nil {
		return Result{}, err
	}
	if opts.Out != "" {
		if err := copyFile(cached, opts.Out); err != nil {
			return Result{}, fmt.Errorf("build: %w", err)
		}
		res.Path = opts.Out
	}
	return res, nil
}

// goBuild builds into a temporary file in the cache and renames it into
// place, so a concurrent or interrupted build never leaves half a binary
// under a valid key. A WASM plugin is built twice (see sectioned): the
// module that ships carries its manifest in a custom section.
func goBuild(ctx context.Context, opts Options, dir, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".build-*")
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := runGo(ctx, opts, dir, tmp.Name()); err != nil {
		return err
	}
	if opts.Target == WASM {
		code, ok, err := sectioned(ctx, opts, dir, tmp.Name())
		if err != nil {
			return err
		}
		if ok {
			if err := os.WriteFile(tmp.Name(), code, 0o755); err != nil {
				return fmt.Errorf("build: %w", err)
			}
		}
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	// Linked, not renamed, into place: a concurrent build of the same key
	// (two agents loading one plugin) must not replace the artifact another
	// agent is starting — the process transport's Landlock rule names the
	// file it checked, and an exec of its replacement is refused. The first
	// build's artifact stays; the key says they are the same program.
	if err := os.Link(tmp.Name(), dst); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("build: %w", err)
	}
	return nil
}

// runGo runs go build for opts.Target into out, with the flags given.
func runGo(ctx context.Context, opts Options, dir, out string, flags ...string) error {
	args := append([]string{"build", "-buildvcs=false", "-o", out}, flags...)
	env := os.Environ()
	if opts.Target == WASM {
		args = append(args, "-buildmode=c-shared")
		env = append(env, "GOOS=wasip1", "GOARCH=wasm")
	}
	cmd := exec.CommandContext(ctx, opts.Go, append(args, ".")...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build: %s (%s): %w\n%s", opts.Dir, opts.Target, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// pipeline names how a WASM artifact is made (see goBuild); it is part of
// the cache key, so artifacts made another way are rebuilt.
const pipeline = "manifest-section-2-codecs"

func hashSources(ctx context.Context, opts Options, dir string) (string, error) {
	h := sha256.New()
	// The toolchain is identified by its binary (path, size, mtime) and the
	// variables that select or tune it, rather than by running `go env`:
	// that would cost every warm start a process spawn.
	goBin, err := exec.LookPath(opts.Go)
	if err != nil {
		return "", fmt.Errorf("build: the go command is needed to build plugins from source: %w", err)
	}
	fi, err := os.Stat(goBin)
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	fmt.Fprintf(h, "target %s %s\ngo %s %d %d\nhost %s/%s\n", opts.Target, pipeline, goBin, fi.Size(), fi.ModTime().UnixNano(), runtime.GOOS, runtime.GOARCH)
	for _, v := range []string{"GOTOOLCHAIN", "GOFLAGS", "GOEXPERIMENT", "GOAMD64", "CGO_ENABLED"} {
		fmt.Fprintf(h, "env %s=%s\n", v, os.Getenv(v))
	}
	if err := hashTree(h, dir); err != nil {
		return "", fmt.Errorf("build: hash %s: %w", opts.Dir, err)
	}
	if mod := moduleRoot(dir); mod != "" {
		for _, f := range []string{"go.mod", "go.sum"} {
			if err := hashFile(h, filepath.Join(mod, f), "module/"+f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("build: hash %s: %w", f, err)
			}
		}
		if err := stampModule(h, mod, dir); err != nil {
			return "", fmt.Errorf("build: hash module %s: %w", mod, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree hashes every regular file under dir by content, in WalkDir's
// (lexical) order.
func hashTree(h io.Writer, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != dir && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || (d.IsDir() && name == "testdata")) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		return hashFile(h, p, filepath.ToSlash(rel))
	})
}

// stampModule hashes the name, size and modification time of every Go file
// in the enclosing module. A plugin imports packages of its own module (the
// SDK, when it lives in the depai repository; shared helpers in a user's
// module), and an edit there must rebuild it. Stat is enough to see an edit
// and keeps a warm start from reading every source file. The plugin's own
// directory dir, which hashTree hashed by content, is not walked again (when
// the plugin is its own module, nothing is).
func stampModule(h io.Writer, mod, dir string) error {
	return filepath.WalkDir(mod, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p == dir {
				return filepath.SkipDir
			}
			if p != mod && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(mod, p)
		fmt.Fprintf(h, "src %s %d %d\n", filepath.ToSlash(rel), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
}

func hashFile(h io.Writer, path, name string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "file %s %d\n", name, len(b))
	_, err = h.Write(b)
	return err
}

// moduleRoot is the nearest directory at or above dir holding a go.mod.
func moduleRoot(dir string) string {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
