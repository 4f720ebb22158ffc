// Package scaffold writes a new plugin's source tree: a plugin with one
// typed tool, its test, and — outside a depai checkout — its own go.mod.
package scaffold

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

//go:embed files/*.tmpl
var files embed.FS

// Data fills the templates.
type Data struct {
	Name string // the plugin's name, also the package directory's
	// Module, when set, makes the plugin its own module of this path, with
	// DepaiVersion required and, if Replace is set, replaced by that
	// directory. Empty: the plugin is a package of an enclosing module.
	Module       string
	GoVersion    string
	DepaiVersion string
	Replace      string
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// CheckName says whether name can name a plugin.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("plugin name %q: want lower-case letters, digits, '-' or '_', starting with a letter", name)
	}
	return nil
}

// Write renders the plugin into dir, which must not exist or be empty. It
// returns the files written, relative to dir.
func Write(dir string, d Data) ([]string, error) {
	if err := CheckName(d.Name); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s exists and is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names, err := files.ReadDir("files")
	if err != nil {
		return nil, err
	}
	var wrote []string
	for _, e := range names {
		out := strings.TrimSuffix(e.Name(), ".tmpl")
		if out == "go.mod" && d.Module == "" {
			continue
		}
		tmpl, err := template.ParseFS(files, "files/"+e.Name())
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("render %s: %w", out, err)
		}
		if err := os.WriteFile(filepath.Join(dir, out), b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		wrote = append(wrote, out)
	}
	return wrote, nil
}
