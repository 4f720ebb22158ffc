package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nkeys"
)

// The W3C did:key test vector (ed25519-x25519.json): the all-zero seed's
// public key, 4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS in base58btc,
// is did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp.
func TestDIDKnownVector(t *testing.T) {
	id, err := FromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if got := b58Encode(id.PublicKey()); got != "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS" {
		t.Fatalf("base58 of the zero seed's key = %s", got)
	}
	const want = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
	if id.DID() != want {
		t.Fatalf("DID = %s, want %s", id.DID(), want)
	}
	pub, err := ParseDID(want)
	if err != nil || !bytes.Equal(pub, id.PublicKey()) {
		t.Fatalf("ParseDID = %x, %v", pub, err)
	}
}

func TestBase58(t *testing.T) {
	for _, tc := range []struct{ hex, b58 string }{
		{"", ""},
		{"00", "1"},
		{"0000", "11"},
		{"61", "2g"},
		{"626262", "a3gV"},
		{"00000000000000000000", "1111111111"},
		{"516b6fcd0f", "ABnLTmg"},
	} {
		raw := mustHex(t, tc.hex)
		if got := b58Encode(raw); got != tc.b58 {
			t.Errorf("encode %s = %q, want %q", tc.hex, got, tc.b58)
		}
		if tc.b58 == "" {
			continue
		}
		back, err := b58Decode(tc.b58, 64)
		if err != nil || !bytes.Equal(back, raw) {
			t.Errorf("decode %q = %x, %v", tc.b58, back, err)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b
}

func TestParseDIDErrors(t *testing.T) {
	good := "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
	for _, tc := range []struct{ did, want string }{
		{"", "want a did:key"},
		{"did:web:example.com", "want a did:key"},
		{"did:key:f0123", "base58btc"},
		{"did:key:z", "empty base58"},
		{"did:key:z0OIl", "not base58btc"},
		// secp256k1-pub (0xe701) is a did:key, but not ours.
		{"did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme", "ed25519-pub"},
		{good[:len(good)-3], "0xed01"},
		// ed25519-pub prefix with a 33-byte key.
		{DIDFromPublicKey(make([]byte, 33)), "key is 33 bytes"},
		{good + "111111111111111111111111111111111111111111111111", "longer"},
	} {
		_, err := ParseDID(tc.did)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDID(%q) = %v, want an error containing %q", tc.did, err, tc.want)
		}
	}
}

func FuzzParseDID(f *testing.F) {
	f.Add("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp")
	f.Add("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme")
	f.Add("did:key:z1111")
	f.Add("did:key:")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := ParseDID(s)
		if err != nil {
			return
		}
		if len(pub) != ed25519.PublicKeySize {
			t.Fatalf("ParseDID(%q) returned a %d-byte key", s, len(pub))
		}
		// Accepted DIDs are canonical: they round-trip exactly.
		if back := DIDFromPublicKey(pub); back != s {
			t.Fatalf("ParseDID(%q) then DIDFromPublicKey = %q", s, back)
		}
	})
}

func FuzzBase58(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 255})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := b58Encode(b)
		if len(b) == 0 {
			return
		}
		back, err := b58Decode(s, len(b))
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip of %x via %q = %x, %v", b, s, back, err)
		}
	})
}

func TestCreateThenLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "robot-1.key")
	id, created, err := LoadOrCreate(Config{Path: path})
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreate(Config{Path: path})
	if err != nil || created || again.DID() != id.DID() {
		t.Fatalf("second LoadOrCreate = %s created=%v %v; want %s", again.DID(), created, err, id.DID())
	}
	if !strings.HasPrefix(id.DID(), "did:key:z6Mk") {
		t.Fatalf("DID %s: an Ed25519 did:key starts with z6Mk", id.DID())
	}
}

func TestConcurrentCreateMakesOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.key")
	dids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range dids {
		wg.Go(func() {
			id, _, err := LoadOrCreate(Config{Path: path})
			if err != nil {
				t.Error(err)
				return
			}
			dids[i] = id.DID()
		})
	}
	wg.Wait()
	for _, d := range dids {
		if d != dids[0] {
			t.Fatalf("concurrent creates gave different keys: %v", dids)
		}
	}
}

func TestSealed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.key")
	pass := []byte("correct horse")
	id, _, err := LoadOrCreate(Config{Path: path, Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte(`"seed"`)) {
		t.Fatalf("sealed file holds a plain seed:\n%s", data)
	}
	if _, err := Load(Config{Path: path}); !errors.Is(err, ErrSealed) {
		t.Fatalf("Load without passphrase = %v, want ErrSealed", err)
	}
	if _, err := Load(Config{Path: path, Passphrase: []byte("wrong")}); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("Load with a wrong passphrase = %v, want ErrPassphrase", err)
	}
	back, err := Load(Config{Path: path, Passphrase: pass})
	if err != nil || back.DID() != id.DID() {
		t.Fatalf("Load = %v, %v", back, err)
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(Config{Path: filepath.Join(dir, "none")}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	for name, tc := range map[string]struct {
		body string
		mode os.FileMode
		want string
	}{
		"garbage":  {"nope", 0o600, "not a depai key file"},
		"version":  {`{"version":2,"type":"ed25519"}`, 0o600, "want version 1"},
		"short":    {`{"version":1,"type":"ed25519","seed":"AAAA"}`, 0o600, "seed is 3 bytes"},
		"readable": {`{"version":1,"type":"ed25519"}`, 0o644, "others can read"},
		"kdf":      {`{"version":1,"type":"ed25519","sealed":{"kdf":"argon2id","time":1000,"memory_kib":1,"threads":1}}`, 0o600, "time 1..16"},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tc.body), tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, tc.mode)
		_, err := Load(Config{Path: p, Passphrase: []byte("x")})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: Load = %v, want an error naming %s and containing %q", name, err, p, tc.want)
		}
	}
}

func TestSignVerify(t *testing.T) {
	a, _ := FromSeed(bytes.Repeat([]byte{1}, 32))
	b, _ := FromSeed(bytes.Repeat([]byte{2}, 32))
	msg := []byte("move to 3,4")
	sig := a.Sign(msg)
	if err := Verify(a.DID(), msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := Verify(b.DID(), msg, sig); !errors.Is(err, ErrSignature) {
		t.Fatalf("verify with another DID = %v", err)
	}
	if err := Verify(a.DID(), []byte("move to 9,9"), sig); !errors.Is(err, ErrSignature) {
		t.Fatalf("verify of a changed message = %v", err)
	}
	if err := Verify(a.DID(), msg, sig[:10]); !errors.Is(err, ErrSignature) {
		t.Fatalf("verify of a short signature = %v", err)
	}
}

// The NATS nkey is the same key: a signature made through nkeys verifies
// against the DID, and the nkey converts to the DID and back.
func TestNKeyIsTheSameKey(t *testing.T) {
	id, _ := FromSeed(bytes.Repeat([]byte{7}, 32))
	kp, err := id.NKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	defer kp.Wipe()
	pub, _ := kp.PublicKey()
	if pub != id.NKey() || !nkeys.IsValidPublicUserKey(pub) {
		t.Fatalf("nkey %s, identity says %s", pub, id.NKey())
	}
	sig, _ := kp.Sign([]byte("nonce"))
	if err := Verify(id.DID(), []byte("nonce"), sig); err != nil {
		t.Fatalf("nkey signature against the DID: %v", err)
	}
	did, err := DIDFromNKey(pub)
	if err != nil || did != id.DID() {
		t.Fatalf("DIDFromNKey = %s, %v", did, err)
	}
	nk, err := NKeyFromDID(id.DID())
	if err != nil || nk != pub {
		t.Fatalf("NKeyFromDID = %s, %v", nk, err)
	}
	seed, _ := id.Seed()
	kp2, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if p2, _ := kp2.PublicKey(); p2 != pub {
		t.Fatalf("exported seed gives %s, want %s", p2, pub)
	}
}
