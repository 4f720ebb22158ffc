package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/internal/wasmbuild"
	"github.com/depai/depai/sdk/wire"
)

// withSection returns module with its custom sections named name dropped,
// and one with payload appended when payload is not nil.
func withSection(t testing.TB, module []byte, name string, payload []byte) []byte {
	t.Helper()
	out := append([]byte(nil), module[:8]...)
	for b := module[8:]; len(b) > 0; {
		size, n := binary.Uvarint(b[1:])
		sec := b[:1+n+int(size)]
		b = b[len(sec):]
		if sec[0] == 0 {
			nl, m := binary.Uvarint(sec[1+n:])
			if string(sec[1+n+m:1+n+m+int(nl)]) == name {
				continue
			}
		}
		out = append(out, sec...)
	}
	if payload == nil {
		return out
	}
	body := append(binary.AppendUvarint(nil, uint64(len(name))), name...)
	body = append(body, payload...)
	out = append(binary.AppendUvarint(append(out, 0), uint64(len(body))), body...)
	return out
}

// TestManifestSection: a plugin built by agent/host/build carries its
// manifest — schemas derived at build time — in wire.ManifestSection, and
// the host takes it from there; the module itself derives no schemas, so
// stripped of the section it refuses to load, and a damaged section is
// reported as such.
func TestManifestSection(t *testing.T) {
	path := wasmbuild.Build(t, "../../../examples/plugins/hello")
	code, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := customSection(code, wire.ManifestSection)
	if err != nil || raw == nil {
		t.Fatalf("hello has no %s section (%v)", wire.ManifestSection, err)
	}
	var m wire.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || m.Name != "hello" || len(m.Tools) != 1 || !bytes.Contains(m.Tools[0].Input, []byte(`"name"`)) || len(m.Errors) != 0 {
		t.Fatalf("section manifest = %s (%v)", raw, err)
	}
	// The module that ships is the build without schema derivation.
	if bytes.Contains(code, []byte("jsonschema-go")) {
		t.Error("the shipped module links github.com/google/jsonschema-go")
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := New(Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	h := host.New(host.Config{Logger: quiet})
	ctx := context.Background()
	inst, err := tr.Load(ctx, host.LoadSpec{Name: "hello", Path: path, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	if got := inst.Manifest(); got.Name != "hello" || len(got.Tools) != 1 || !bytes.Equal(got.Tools[0].Input, m.Tools[0].Input) {
		t.Errorf("loaded manifest = %+v", got)
	}
	if r := inst.Call(ctx, wire.Call{Method: "hello.greet", Payload: json.RawMessage(`{"name":"Ada"}`), Checked: true}); r.Error != nil || string(r.Payload) != `{"greeting":"Hello, Ada!"}` {
		t.Errorf("greet = %s, %v", r.Payload, r.Error)
	}
	_ = inst.Close(ctx)

	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"stripped", nil, "describes itself in its depai.manifest custom section, which it lacks"},
		{"damaged", []byte(`{"name":`), "depai.manifest section: manifest is not valid JSON"},
	} {
		p := filepath.Join(dir, tc.name+".wasm")
		if err := os.WriteFile(p, withSection(t, code, wire.ManifestSection, tc.payload), 0o644); err != nil {
			t.Fatal(err)
		}
		inst, err := tr.Load(ctx, host.LoadSpec{Name: tc.name, Path: p, Host: h})
		if err == nil {
			_ = inst.Close(ctx)
		}
		// A manifest that lists errors is refused by host.Load; the
		// transport hands it on, so look there for the stripped module.
		if tc.payload == nil && err == nil {
			if errs := inst.Manifest().Errors; len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Errorf("%s: manifest errors = %q; want %q", tc.name, errs, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load = %v; want %q", tc.name, err, tc.want)
		}
	}
}

func TestCustomSection(t *testing.T) {
	mod := []byte("\x00asm\x01\x00\x00\x00")
	mod = withSection(t, mod, "other", []byte("x"))
	mod = append(mod, 1, 1, 0) // a type section with no types
	mod = withSection(t, mod, "depai.manifest", []byte(`{}`))
	if got, err := customSection(mod, "depai.manifest"); err != nil || string(got) != `{}` {
		t.Errorf("customSection = %q, %v", got, err)
	}
	if got, err := customSection(mod, "missing"); err != nil || got != nil {
		t.Errorf("missing section = %q, %v", got, err)
	}
	for _, bad := range [][]byte{mod[:4], append(append([]byte(nil), mod[:8]...), 0, 9, 1), append(append([]byte(nil), mod[:8]...), 0, 2, 5, 'a')} {
		if _, err := customSection(bad, "depai.manifest"); err == nil {
			t.Errorf("customSection(%q) accepted a malformed module", bad)
		}
	}
}

// FuzzCustomSection: any bytes give a section, none, or an error; never a
// panic or a slice outside the input.
func FuzzCustomSection(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\x0f\x0edepai.manifest{}"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\x01\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := customSection(b, "depai.manifest")
		if err == nil && got != nil && !bytes.Contains(b, got) {
			t.Fatalf("section %q is not part of the module", got)
		}
	})
}
