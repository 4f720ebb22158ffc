package operator

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFileName is the token's file name inside a data directory.
const TokenFileName = "operator.token"

// LoadOrCreateToken returns the token stored at path, or, when there is no
// file there yet, generates one (32 random bytes, hex-encoded), stores it with
// mode 0600 and returns it. created reports which happened. A token file that
// other users can read is refused, as ssh refuses such a key.
func LoadOrCreateToken(path string) (token string, created bool, err error) {
	token, err = ReadToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return token, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("operator: token: %w", err)
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program first)
	token = hex.EncodeToString(b[:])
	// O_EXCL: when two processes start at once, one creates and the other
	// reads what it wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		token, err = ReadToken(path)
		return token, false, err
	}
	if err != nil {
		return "", false, fmt.Errorf("operator: token: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", false, fmt.Errorf("operator: token: writing %s: %w", path, err)
	}
	return token, true, nil
}

// ReadToken reads the token stored at path. The error wraps fs.ErrNotExist
// when there is no file.
func ReadToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("operator: token: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("operator: token file %s has mode %04o, readable by other users (want 0600: chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("operator: token: %w", err)
	}
	token := strings.TrimSpace(string(data))
	switch {
	case token == "":
		return "", fmt.Errorf("operator: token file %s is empty (delete it and depai run makes a new one)", path)
	case strings.ContainsAny(token, " \t\r\n"):
		return "", fmt.Errorf("operator: token file %s holds more than one line or word (expected one token)", path)
	}
	return token, nil
}
