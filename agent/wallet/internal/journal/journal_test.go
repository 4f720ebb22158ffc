package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func collect(t *testing.T, path string) ([]string, error) {
	t.Helper()
	var got []string
	j, err := Open(path, func(_ int, p []byte) error { got = append(got, string(p)); return nil })
	if err != nil {
		return nil, err
	}
	return got, j.Close()
}

func TestAppendReplayConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "j.log")
	j, err := Open(path, func(int, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := j.AppendSync([]byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	got, err := collect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 400 {
		t.Fatalf("replayed %d records, want 400", len(got))
	}
}

func TestTornTailIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.log")
	whole := string(Encode([]byte(`{"a":1}`)))
	torn := string(Encode([]byte(`{"a":2}`)))
	os.WriteFile(path, []byte(whole+torn[:len(torn)-3]), 0o600)
	got, err := collect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != `{"a":1}` {
		t.Fatalf("got %q", got)
	}
	b, _ := os.ReadFile(path)
	if string(b) != whole {
		t.Fatalf("file not truncated to the whole records: %q", b)
	}
}

func TestDamageRefusesOpen(t *testing.T) {
	for name, content := range map[string]string{
		"bitflip":   strings.Replace(string(Encode([]byte(`{"amount":"100"}`))), "100", "900", 1),
		"garbage":   "hello world\n",
		"shortline": "abc\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.log")
			os.WriteFile(path, []byte(string(Encode([]byte(`{}`)))+content+string(Encode([]byte(`{}`)))), 0o600)
			_, err := collect(t, path)
			if err == nil || !strings.Contains(err.Error(), path+":2:") {
				t.Fatalf("err = %v, want one naming %s:2", err, path)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.log")
	j, err := Open(path, func(int, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		j.AppendSync([]byte(fmt.Sprint(i)))
	}
	if err := j.Rewrite([][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := j.AppendSync([]byte("y")); err != nil {
		t.Fatal(err)
	}
	j.Close()
	got, err := collect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "x,y" {
		t.Fatalf("got %q", got)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(Encode([]byte(`{"a":1}`)))
	f.Add([]byte("00000000 x\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "j.log")
		os.WriteFile(path, data, 0o600)
		j, err := Open(path, func(int, []byte) error { return nil })
		if err == nil {
			j.Close()
		}
	})
}
