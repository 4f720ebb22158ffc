package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// customSection returns the payload of the first custom section named name
// in a WASM module, or nil. It walks the section headers only (each says
// its size), so it costs nothing next to decoding the module; a module
// whose headers do not add up is reported, and wazero refuses it anyway.
func customSection(module []byte, name string) ([]byte, error) {
	if len(module) < 8 {
		return nil, errors.New("truncated module header")
	}
	b := module[8:]
	for len(b) > 0 {
		id := b[0]
		size, n := binary.Uvarint(b[1:])
		if n <= 0 || size > uint64(len(b)-1-n) {
			return nil, fmt.Errorf("section %d at offset %d: size runs past the end of the module", id, len(module)-len(b))
		}
		body := b[1+n : 1+n+int(size)]
		b = b[1+n+int(size):]
		if id != 0 {
			continue
		}
		nl, m := binary.Uvarint(body)
		if m <= 0 || nl > uint64(len(body)-m) {
			return nil, fmt.Errorf("custom section at offset %d: name runs past the section", len(module)-len(b)-len(body))
		}
		if string(body[m:m+int(nl)]) == name {
			return body[m+int(nl):], nil
		}
	}
	return nil, nil
}
