package identity

import (
	"errors"
	"fmt"
)

// The bitcoin base58 alphabet, which multibase calls base58btc.
const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var b58Index = func() [256]int8 {
	var t [256]int8
	for i := range t {
		t[i] = -1
	}
	for i := range len(b58Alphabet) {
		t[b58Alphabet[i]] = int8(i)
	}
	return t
}()

// b58Encode encodes b in base58btc: each leading zero byte becomes a '1',
// the rest is the big-endian number in base 58.
func b58Encode(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58) < 1.37: enough digits for the number.
	digits := make([]byte, 0, len(b)*137/100+1)
	for _, c := range b[zeros:] {
		carry := int(c)
		for i := range digits {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits = append(digits, byte(carry%58))
			carry /= 58
		}
	}
	out := make([]byte, zeros+len(digits))
	for i := range zeros {
		out[i] = '1'
	}
	for i, d := range digits {
		out[len(out)-1-i] = b58Alphabet[d]
	}
	return string(out)
}

var errB58Empty = errors.New("empty base58 string")

// b58Decode decodes base58btc. maxLen bounds the decoded length, so a long
// hostile input costs no more than the caller allows.
func b58Decode(s string, maxLen int) ([]byte, error) {
	if s == "" {
		return nil, errB58Empty
	}
	// A base58 digit carries less than 6 bits: more digits than this cannot fit.
	if len(s) > maxLen*138/100+1 {
		return nil, fmt.Errorf("base58 string of %d characters is longer than %d bytes can be", len(s), maxLen)
	}
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	num := make([]byte, 0, len(s)) // little-endian base-256 digits
	for i := zeros; i < len(s); i++ {
		v := b58Index[s[i]]
		if v < 0 {
			return nil, fmt.Errorf("character %q at %d is not base58btc", s[i], i)
		}
		carry := int(v)
		for j := range num {
			carry += int(num[j]) * 58
			num[j] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			num = append(num, byte(carry))
			carry >>= 8
		}
	}
	if zeros+len(num) > maxLen {
		return nil, fmt.Errorf("base58 string decodes to %d bytes, more than %d", zeros+len(num), maxLen)
	}
	out := make([]byte, zeros+len(num))
	for i, c := range num {
		out[len(out)-1-i] = c
	}
	return out, nil
}
