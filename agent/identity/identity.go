// Package identity gives each agent an Ed25519 key pair: created on first
// run in a file of mode 0600 (optionally sealed with a passphrase the caller
// supplies), shown as a did:key, and usable as the agent's NATS user nkey,
// so the key that signs an agent's messages is also the key it connects to
// NATS with.
//
// The package reads no environment variables: the caller passes the
// passphrase.
package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/argon2"

	"github.com/depai/depai/internal/atomicfile"
)

// Identity is an agent's key pair. It is safe for concurrent use.
type Identity struct {
	priv ed25519.PrivateKey
	did  string
	nkey string
}

// Errors, wrapped with the file they concern; test them with errors.Is.
var (
	ErrPassphrase = errors.New("identity: wrong passphrase or damaged key file")
	ErrSealed     = errors.New("identity: key file is sealed and no passphrase was given")
	ErrSignature  = errors.New("identity: signature does not verify")
)

// Config says where a key lives. Path is required.
type Config struct {
	// Path is the key file; it and its directory are created (0600/0700)
	// when missing.
	Path string
	// Passphrase, when set, seals a new key file (argon2id + AES-256-GCM)
	// and opens a sealed one. An unsealed file opens without it.
	Passphrase []byte
}

// LoadOrCreate opens the key in cfg.Path, creating a new one when the file
// does not exist. created reports which happened.
func LoadOrCreate(cfg Config) (id *Identity, created bool, err error) {
	if cfg.Path == "" {
		return nil, false, errors.New("identity: Config.Path is empty")
	}
	id, err = Load(cfg)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, false, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, false, fmt.Errorf("identity: generating a key: %w", err)
	}
	data, err := encodeKeyFile(seed, cfg.Passphrase)
	if err != nil {
		return nil, false, fmt.Errorf("identity: %s: %w", cfg.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	// The key is written whole to a temporary file and linked into place:
	// link fails if the path exists, so two processes starting at once do
	// not each write a key, and no reader (nor a restart after a crash)
	// ever sees a key file half written — an O_EXCL create followed by the
	// write let a concurrent start read it empty.
	f, err := os.CreateTemp(filepath.Dir(cfg.Path), "."+filepath.Base(cfg.Path)+".*")
	if err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Chmod(0o600), f.Sync(), f.Close()); err != nil {
		return nil, false, fmt.Errorf("identity: writing %s: %w", cfg.Path, err)
	}
	if err := os.Link(tmp, cfg.Path); errors.Is(err, fs.ErrExist) {
		id, err := Load(cfg)
		return id, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(cfg.Path)); err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	id, err = FromSeed(seed)
	return id, true, err
}

// Load opens an existing key file. A missing file is an error wrapping
// fs.ErrNotExist.
func Load(cfg Config) (*Identity, error) {
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if fi, err := os.Stat(cfg.Path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity: %s has mode %v: others can read the key; want 0600 (chmod 600 %s)", cfg.Path, fi.Mode().Perm(), cfg.Path)
	}
	seed, err := decodeKeyFile(data, cfg.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", cfg.Path, err)
	}
	return FromSeed(seed)
}

// FromSeed makes an Identity from a 32-byte Ed25519 seed.
func FromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity: seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	nk, err := nkeys.Encode(nkeys.PrefixByteUser, pub)
	if err != nil {
		return nil, fmt.Errorf("identity: nkey: %w", err)
	}
	return &Identity{priv: priv, did: DIDFromPublicKey(pub), nkey: string(nk)}, nil
}

// DID is the agent's did:key.
func (id *Identity) DID() string { return id.did }

// PublicKey is the agent's Ed25519 public key.
func (id *Identity) PublicKey() ed25519.PublicKey { return id.priv.Public().(ed25519.PublicKey) }

// NKey is the public NATS user nkey ("U…") of the same key.
func (id *Identity) NKey() string { return id.nkey }

// NKeyPair returns the key as a NATS user nkey pair, for nats.Nkey
// authentication. The caller should Wipe it when done.
func (id *Identity) NKeyPair() (nkeys.KeyPair, error) {
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, id.priv.Seed())
	if err != nil {
		return nil, fmt.Errorf("identity: nkey: %w", err)
	}
	return kp, nil
}

// Seed returns the private seed in NATS's encoded form ("SU…"), for
// export. Treat it as the secret it is.
func (id *Identity) Seed() ([]byte, error) {
	s, err := nkeys.EncodeSeed(nkeys.PrefixByteUser, id.priv.Seed())
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return s, nil
}

// Sign signs msg with Ed25519.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

// Verify checks sig over msg against the key named by did.
func Verify(did string, msg, sig []byte) error {
	pub, err := ParseDID(did)
	if err != nil {
		return err
	}
	return VerifyKey(pub, msg, sig)
}

// VerifyKey checks sig over msg against pub.
func VerifyKey(pub ed25519.PublicKey, msg, sig []byte) error {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return ErrSignature
	}
	return nil
}

// DIDFromNKey returns the did:key of a public NATS user nkey ("U…").
func DIDFromNKey(nkey string) (string, error) {
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(nkey))
	if err != nil {
		return "", fmt.Errorf("identity: nkey %q: %w", clip(nkey), err)
	}
	return DIDFromPublicKey(raw), nil
}

// NKeyFromDID returns the public NATS user nkey of a did:key.
func NKeyFromDID(did string) (string, error) {
	pub, err := ParseDID(did)
	if err != nil {
		return "", err
	}
	nk, err := nkeys.Encode(nkeys.PrefixByteUser, pub)
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	return string(nk), nil
}

// keyFile is the on-disk form. Exactly one of Seed and Sealed is set.
type keyFile struct {
	Version int     `json:"version"`
	Type    string  `json:"type"`
	Seed    []byte  `json:"seed,omitempty"`
	Sealed  *sealed `json:"sealed,omitempty"`
}

type sealed struct {
	KDF        string `json:"kdf"` // "argon2id"
	Salt       []byte `json:"salt"`
	Time       uint32 `json:"time"`
	MemoryKiB  uint32 `json:"memory_kib"`
	Threads    uint8  `json:"threads"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"` // AES-256-GCM of the seed
}

const keyFileType = "ed25519"

// argon2id parameters of new sealed files (RFC 9106's second recommended
// option, lighter on memory for small robots). Stored in the file, so they
// can grow without breaking old files.
const (
	argonTime    = 3
	argonMemory  = 64 << 10
	argonThreads = 2
)

// Bounds on parameters read from a file, so a crafted file cannot make
// opening it cost gigabytes or hours.
const (
	maxArgonTime   = 16
	maxArgonMemory = 1 << 20
)

func encodeKeyFile(seed, passphrase []byte) ([]byte, error) {
	kf := keyFile{Version: 1, Type: keyFileType}
	if len(passphrase) == 0 {
		kf.Seed = seed
	} else {
		s := &sealed{KDF: "argon2id", Salt: make([]byte, 16), Time: argonTime, MemoryKiB: argonMemory, Threads: argonThreads}
		if _, err := rand.Read(s.Salt); err != nil {
			return nil, err
		}
		aead, err := sealer(passphrase, s)
		if err != nil {
			return nil, err
		}
		s.Nonce = make([]byte, aead.NonceSize())
		if _, err := rand.Read(s.Nonce); err != nil {
			return nil, err
		}
		s.Ciphertext = aead.Seal(nil, s.Nonce, seed, []byte(keyFileType))
		kf.Sealed = s
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	return append(data, '\n'), err
}

func decodeKeyFile(data, passphrase []byte) ([]byte, error) {
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("not a depai key file: %w", err)
	}
	if kf.Version != 1 || kf.Type != keyFileType {
		return nil, fmt.Errorf("version %d type %q: want version 1 type %q", kf.Version, kf.Type, keyFileType)
	}
	switch {
	case kf.Sealed == nil && len(kf.Seed) == ed25519.SeedSize:
		return kf.Seed, nil
	case kf.Sealed == nil:
		return nil, fmt.Errorf("seed is %d bytes, want %d", len(kf.Seed), ed25519.SeedSize)
	case len(passphrase) == 0:
		return nil, ErrSealed
	}
	s := kf.Sealed
	if s.KDF != "argon2id" || s.Time == 0 || s.Time > maxArgonTime || s.MemoryKiB == 0 || s.MemoryKiB > maxArgonMemory || s.Threads == 0 {
		return nil, fmt.Errorf("sealed: kdf %q time %d memory %d KiB threads %d: want argon2id, time 1..%d, memory 1..%d KiB", s.KDF, s.Time, s.MemoryKiB, s.Threads, maxArgonTime, maxArgonMemory)
	}
	aead, err := sealer(passphrase, s)
	if err != nil {
		return nil, err
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("sealed: nonce is %d bytes, want %d", len(s.Nonce), aead.NonceSize())
	}
	seed, err := aead.Open(nil, s.Nonce, s.Ciphertext, []byte(keyFileType))
	if err != nil {
		return nil, ErrPassphrase
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("sealed seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return seed, nil
}

func sealer(passphrase []byte, s *sealed) (cipher.AEAD, error) {
	key := argon2.IDKey(passphrase, s.Salt, s.Time, s.MemoryKiB, s.Threads, 32)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// KeyDir is the directory of a data directory that holds agents' keys.
const KeyDir = "identity"

// KeyPath is where the key of the named agent lives in a data directory:
// DATA/identity/NAME.key.
func KeyPath(dataDir, agent string) (string, error) {
	if agent == "" || agent != filepath.Base(agent) || agent == "." || agent == ".." {
		return "", fmt.Errorf("identity: agent name %q cannot name a key file: want a name without path separators", agent)
	}
	return filepath.Join(dataDir, KeyDir, agent+".key"), nil
}
