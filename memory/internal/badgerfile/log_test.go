package badgerfile

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// entry encodes one log entry as badger writes it.
func entry(meta byte, key, val []byte) []byte {
	b := []byte{meta, 0}
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = binary.AppendUvarint(b, uint64(len(val)))
	b = binary.AppendUvarint(b, 0)
	b = append(append(b, key...), val...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func key(k string, ts uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(k), ^ts)
}

// logOf builds a log of n transactions of two entries each, then zeros.
func logOf(n int) []byte {
	d := make([]byte, headerSize)
	for ts := uint64(1); ts <= uint64(n); ts++ {
		d = append(d, entry(bitTxn, key("ra", ts), []byte("v"))...)
		d = append(d, entry(bitTxn, key("rb", ts), []byte("w"))...)
		d = append(d, entry(bitFinTxn, key("!badger!txn", ts), []byte(strconv.FormatUint(ts, 10)))...)
	}
	return append(d, make([]byte, 4096)...)
}

func scanBytes(t *testing.T, d []byte, salvage bool) LogScan {
	t.Helper()
	path := filepath.Join(t.TempDir(), "00001.mem")
	if err := os.WriteFile(path, d, 0o600); err != nil {
		t.Fatal(err)
	}
	s, closeFn, err := ScanLog(path, salvage)
	if err != nil {
		t.Fatal(err)
	}
	closeFn()
	return s
}

func TestScanLog(t *testing.T) {
	good := logOf(10)
	if s := scanBytes(t, good, false); s.Damage != nil || len(s.Txns) != 10 || s.Torn != 0 {
		t.Fatalf("clean log: %+v", s)
	}
	// A torn last transaction (its end marker never written) is not damage.
	torn := logOf(10)
	cut := len(torn) - 4096 - len(entry(bitFinTxn, key("!badger!txn", 10), []byte("10")))
	for i := cut; i < len(torn); i++ {
		torn[i] = 0
	}
	if s := scanBytes(t, torn, false); s.Damage != nil || len(s.Txns) != 9 || s.Torn == 0 || len(s.TornKeys) != 2 {
		t.Fatalf("torn log: damage %v, %d txns, torn %d, keys %q", s.Damage, len(s.Txns), s.Torn, s.TornKeys)
	}
	// A flipped byte in the middle is damage; salvage finds the rest.
	bad := logOf(10)
	bad[headerSize+60] ^= 1
	s := scanBytes(t, bad, true)
	if s.Damage == nil || len(s.Txns) != 0 || len(s.After) != 9 {
		t.Fatalf("flipped byte: damage %v, %d txns before, %d after", s.Damage, len(s.Txns), len(s.After))
	}
}

func FuzzScanLog(f *testing.F) {
	f.Add(logOf(3), uint16(40), byte(1))
	f.Add(logOf(1), uint16(0), byte(0xff))
	f.Add([]byte{}, uint16(0), byte(0))
	f.Fuzz(func(t *testing.T, d []byte, at uint16, x byte) {
		if len(d) > 0 {
			d[int(at)%len(d)] ^= x
		}
		s := scanBytes(t, d, true)
		if s.ValidEnd > s.Size && s.Size > 0 || s.Damage != nil && s.Damage.Offset > s.Size {
			t.Fatalf("scan out of bounds: %+v", s)
		}
	})
}

// A transaction is salvaged whole or not at all, wherever in it one bit
// flips: the damaged entry's own version may be what flipped, so it cannot
// say where its transaction ends (TestOpenRepair found a transaction whose
// first entry's version was damaged salvaged without that entry).
func TestSalvageSkipsTheWholeDamagedTransaction(t *testing.T) {
	txn := len(logOf(1)) - 4096 - headerSize
	for at := headerSize + txn; at < headerSize+2*txn; at++ {
		for _, x := range []byte{0x01, 0x10, 0x80} {
			d := logOf(4)
			d[at] ^= x
			s := scan("00001.mem", d, true)
			if s.Damage == nil {
				t.Fatalf("byte %d ^ %#x: no damage found", at, x)
			}
			var vers []uint64
			for _, tx := range append(s.Txns, s.After...) {
				if len(tx.Entries) != 2 || version(tx.Entries[0].Key) != version(tx.Entries[1].Key) {
					t.Fatalf("byte %d ^ %#x: salvaged a partial transaction: %d entries", at, x, len(tx.Entries))
				}
				vers = append(vers, version(tx.Entries[0].Key))
			}
			if len(vers) != 3 || vers[0] != 1 || vers[1] != 3 || vers[2] != 4 {
				t.Fatalf("byte %d ^ %#x: salvaged transactions %v, want [1 3 4]", at, x, vers)
			}
		}
	}
}
