package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/depai/depai/agent/operator"
)

// dataDir picks the data directory: the --data flag, $DEPAI_DATA, the
// config's data_dir hint, then the per-user state directory.
func dataDir(flag, configHint string) string {
	for _, d := range []string{flag, os.Getenv("DEPAI_DATA"), configHint} {
		if d != "" {
			return d
		}
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "depai")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "depai")
	}
	return ".depai"
}

// runInfoFile is written into the data directory by `depai run` while it
// serves, so that `depai chat` finds the API and its token without flags.
const runInfoFile = "operator.json"

type runInfo struct {
	Addr      string `json:"addr"`
	TokenFile string `json:"token_file"`
	PID       int    `json:"pid"`
}

func writeRunInfo(dir string, info runInfo) error {
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, runInfoFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// readRunInfo reads what a `depai run` on dir wrote; ok is false when there
// is none.
func readRunInfo(dir string) (info runInfo, ok bool, err error) {
	path := filepath.Join(dir, runInfoFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return info, false, nil
	}
	if err != nil {
		return info, false, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, false, fmt.Errorf("%s: %w (delete it; depai run writes it again)", path, err)
	}
	return info, true, nil
}

// tokenPath is where the operator token of a fleet lives: the config's
// token_file, or operator.token in the data directory.
func tokenPath(configured, dir string) string {
	if configured != "" {
		return configured
	}
	return filepath.Join(dir, operator.TokenFileName)
}
