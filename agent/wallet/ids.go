package wallet

import (
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

// Chain ids of the networks depai names identities for.
const (
	ChainPeaq          = 3338
	ChainIoTeX         = 4689
	ChainIoTeXTestnet  = 4690
	iotexHRP           = "io"
	bech32Charset      = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	bech32ChecksumSize = 6
)

// PeaqDID is the peaq DID of an EVM address, as peaq's DID precompile keys
// it: did:peaq:0x… (checksummed).
func PeaqDID(a common.Address) string { return "did:peaq:" + a.Hex() }

// IoDID is the IoTeX ioID DID of an EVM address: did:io:0x… (lower case,
// as ioID's registry writes it).
func IoDID(a common.Address) string { return "did:io:" + strings.ToLower(a.Hex()) }

// IoTeXAddress is an EVM address in IoTeX's native form, as ioctl prints
// it: the 20 bytes in bech32 with the human-readable part "io".
func IoTeXAddress(a common.Address) string {
	data := convertBits(a.Bytes(), 8, 5)
	values := append(hrpExpand(iotexHRP), data...)
	poly := polymod(append(values, make([]byte, bech32ChecksumSize)...)) ^ 1
	var b strings.Builder
	b.WriteString(iotexHRP + "1")
	for _, d := range data {
		b.WriteByte(bech32Charset[d])
	}
	for i := range bech32ChecksumSize {
		b.WriteByte(bech32Charset[(poly>>uint(5*(5-i)))&31])
	}
	return b.String()
}

// convertBits regroups 8-bit bytes into 5-bit groups, padding the last.
func convertBits(in []byte, from, to uint) []byte {
	var acc, bits uint
	out := make([]byte, 0, len(in)*int(from)/int(to)+1)
	maxv := uint(1)<<to - 1
	for _, v := range in {
		acc = acc<<from | uint(v)
		bits += from
		for bits >= to {
			bits -= to
			out = append(out, byte(acc>>bits&maxv))
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(to-bits)&maxv))
	}
	return out
}

func hrpExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := range len(hrp) {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := range len(hrp) {
		out = append(out, hrp[i]&31)
	}
	return out
}

// polymod is BIP-173's checksum.
func polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if top>>uint(i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

// Identities lists an EVM address's identities on the chains depai knows:
// the address itself, peaq's DID, IoTeX's native address and ioID DID.
func Identities(a common.Address) map[string]string {
	return map[string]string{
		"evm":      a.Hex(),
		"peaq_did": PeaqDID(a),
		"iotex":    IoTeXAddress(a),
		"ioid_did": IoDID(a),
	}
}
