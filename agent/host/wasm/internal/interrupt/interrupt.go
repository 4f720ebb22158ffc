// Package interrupt rewrites a WASM module so that the host can stop it
// within a few microseconds, cheaply. wazero's WithCloseOnContextDone calls
// out of the machine code into Go at every loop head to check whether the
// module was closed, and Go's WASM output passes a loop head for nearly
// every jump: tight loops run about 25 times slower. The rewrite adds two
// mutable i32 globals — a countdown and an interrupt flag, exported as
// Export — and at the head of every loop
//
//	countdown -= 1
//	if countdown == 0 {
//	  countdown = Period
//	  memory.grow 0      ;; a call out into Go and back
//	  if interrupt { unreachable }
//	}
//
// The host sets the flag (api.MutableGlobal.Set, from any goroutine) when a
// call's deadline passes or its context ends, and the guest traps within
// Period loop heads. The call out into Go matters as much as the flag:
// machine code cannot be preempted, so a guest that never left it would
// hold up every stop-the-world of the Go runtime — garbage collection
// included, and with it the timer that would raise the flag. Every unbounded
// computation in WASM passes a loop head (or recurses, and then overflows
// its stack).
//
// The rewrite understands the WASM 2.0 instruction set (with tail calls);
// for anything else — exceptions, threads, GC or typed function references,
// several memories — it returns ErrUnsupported, and the host falls back to
// wazero's own instrumentation. A module whose code refers to a global that
// does not exist is refused, since after the rewrite it would name the
// interrupt global.
package interrupt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Version changes whenever the rewrite does, so that rewrites cached by an
// older one are not used.
const Version = 1

// Export is the name the interrupt global is exported under.
const Export = "depai.interrupt"

// Period is how many loop heads a guest passes between checks of the flag.
// A check costs a call out into Go, ~0.1–0.2 µs; a loop head in Go's WASM
// output a few nanoseconds: the checks cost well under 1 %, and a guest
// stops, or lets the Go runtime stop the world, within about 10 µs.
const Period = 1024

// ErrUnsupported says the module uses a feature the rewrite does not know.
var ErrUnsupported = errors.New("interrupt: unsupported WASM feature")

// check is inserted after every loop's block type; count and flag are the
// globals' indices.
func check(count, flag uint32) []byte {
	g := func(op byte, idx uint32) []byte { return binary.AppendUvarint([]byte{op}, uint64(idx)) }
	var b []byte
	b = append(b, g(0x23, count)...)            // global.get count
	b = append(b, 0x41, 0x01, 0x6b)             // i32.const 1; i32.sub
	b = append(b, g(0x24, count)...)            // global.set count
	b = append(b, g(0x23, count)...)            // global.get count
	b = append(b, 0x45, 0x04, 0x40)             // i32.eqz; if
	b = append(b, 0x41)                         // i32.const Period
	b = binary.AppendVarint(b, Period)          //
	b = append(b, g(0x24, count)...)            // global.set count
	b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a) // i32.const 0; memory.grow; drop
	b = append(b, g(0x23, flag)...)             // global.get flag
	b = append(b, 0x04, 0x40, 0x00, 0x0b)       // if; unreachable; end
	return append(b, 0x0b)                      // end
}

// newGlobals are the definitions of the countdown and the flag.
func newGlobals() []byte {
	b := append([]byte{0x7f, 0x01, 0x41}, binary.AppendVarint(nil, Period)...)
	return append(b, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b)
}

// Section ids.
const (
	secCustom   = 0
	secImport   = 2
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
	secData     = 11
	secDataCnt  = 12
	secTag      = 13
	externGlobl = 3
)

// order is each known section's position in a module (the tag section sits
// between memory and global).
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, secTag: 6, secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCnt: 11, secCode: 12, secData: 13}

type section struct {
	id   byte
	body []byte
}

// Instrument returns code with the interrupt global and the loop checks.
// Errors other than ErrUnsupported mean the module is malformed.
func Instrument(code []byte) ([]byte, error) {
	if len(code) < 8 || !bytes.Equal(code[:8], []byte("\x00asm\x01\x00\x00\x00")) {
		return nil, errors.New("interrupt: not a WASM 1.0 binary module")
	}
	r := &reader{b: code, off: 8}
	var secs []section
	last := 0
	for !r.done() {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("interrupt: section %d: %w", id, r.err)
		}
		if id != secCustom {
			pos, ok := order[id]
			if !ok {
				return nil, fmt.Errorf("%w: section id %d", ErrUnsupported, id)
			}
			if pos <= last {
				return nil, fmt.Errorf("interrupt: section %d out of order", id)
			}
			last = pos
		}
		secs = append(secs, section{id, body})
	}
	var globals, memories uint32
	for _, s := range secs {
		switch s.id {
		case secImport:
			g, m, err := imports(s.body)
			if err != nil {
				return nil, err
			}
			globals += g
			memories += m
		case secMemory:
			n, err := leadingCount(s.body)
			if err != nil {
				return nil, err
			}
			memories += n
		case secGlobal:
			n, err := leadingCount(s.body)
			if err != nil {
				return nil, err
			}
			globals += n
		}
	}
	if memories != 1 {
		return nil, fmt.Errorf("%w: %d memories (the check needs exactly one)", ErrUnsupported, memories)
	}
	// The new globals are appended after every existing one.
	count, flag := globals, globals+1
	out := append([]byte(nil), code[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	haveGlobal, haveExport := false, false
	for i, s := range secs {
		// Sections the module lacks are added where they belong.
		if !haveGlobal && s.id != secCustom && order[s.id] > order[secGlobal] {
			emit(secGlobal, append([]byte{2}, newGlobals()...))
			haveGlobal = true
		}
		if !haveExport && s.id != secCustom && order[s.id] > order[secExport] {
			emit(secExport, exportEntry(1, nil, flag))
			haveExport = true
		}
		var body []byte
		var err error
		switch s.id {
		case secCustom:
			// DWARF maps code offsets, which the checks shift.
			if isDebug(s.body) {
				continue
			}
			body = s.body
		case secGlobal:
			body, err = rewriteGlobals(s.body, globals)
			haveGlobal = true
		case secExport:
			body, err = rewriteExports(s.body, flag)
			haveExport = true
		case secElement:
			err = checkElements(s.body, globals)
			body = s.body
		case secData:
			err = checkData(s.body, globals)
			body = s.body
		case secCode:
			body, err = rewriteCode(s.body, globals, check(count, flag))
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("section %d (#%d): %w", s.id, i, err)
		}
		emit(s.id, body)
	}
	if !haveGlobal {
		emit(secGlobal, append([]byte{2}, newGlobals()...))
	}
	if !haveExport {
		emit(secExport, exportEntry(1, nil, flag))
	}
	return out, nil
}

func isDebug(body []byte) bool {
	r := &reader{b: body}
	name := r.name()
	return r.err == nil && len(name) >= 7 && name[:7] == ".debug_"
}

func leadingCount(body []byte) (uint32, error) {
	r := &reader{b: body}
	n := r.count()
	return n, r.err
}

// imports counts the imported globals and memories.
func imports(body []byte) (globals, memories uint32, err error) {
	r := &reader{b: body}
	for range r.count() {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0: // function
			r.u32()
		case 1: // table
			r.refType()
			r.limits()
		case 2: // memory
			r.limits()
			memories++
		case externGlobl:
			r.valType()
			r.byte()
			globals++
		default:
			r.fail(fmt.Errorf("%w: import kind %d", ErrUnsupported, kind))
		}
		if r.err != nil {
			break
		}
	}
	if r.err == nil && !r.done() {
		r.fail(errors.New("trailing bytes"))
	}
	return globals, memories, r.err
}

func rewriteGlobals(body []byte, globals uint32) ([]byte, error) {
	r := &reader{b: body}
	n := r.count()
	entries := r.off
	for range n {
		r.valType()
		r.byte()
		r.constExpr(globals)
		if r.err != nil {
			return nil, r.err
		}
	}
	if !r.done() {
		return nil, errors.New("trailing bytes")
	}
	out := binary.AppendUvarint(nil, uint64(n)+2)
	out = append(out, body[entries:]...)
	return append(out, newGlobals()...), nil
}

func exportEntry(count uint64, entries []byte, idx uint32) []byte {
	out := binary.AppendUvarint(nil, count)
	out = append(out, entries...)
	out = binary.AppendUvarint(out, uint64(len(Export)))
	out = append(out, Export...)
	out = append(out, externGlobl)
	return binary.AppendUvarint(out, uint64(idx))
}

func rewriteExports(body []byte, idx uint32) ([]byte, error) {
	r := &reader{b: body}
	n := r.count()
	entries := r.off
	for range n {
		if r.name() == Export {
			return nil, fmt.Errorf("%w: the module already exports %q", ErrUnsupported, Export)
		}
		r.byte()
		r.u32()
		if r.err != nil {
			return nil, r.err
		}
	}
	if !r.done() {
		return nil, errors.New("trailing bytes")
	}
	return exportEntry(uint64(n)+1, body[entries:], idx), nil
}

func checkElements(body []byte, globals uint32) error {
	r := &reader{b: body}
	for range r.count() {
		flag := r.u32()
		if flag > 7 {
			return fmt.Errorf("%w: element segment kind %d", ErrUnsupported, flag)
		}
		if flag&1 == 0 { // active
			if flag&2 != 0 {
				r.u32() // table
			}
			r.constExpr(globals)
		}
		if flag&3 != 0 { // an element kind or reference type
			r.byte()
		}
		for range r.count() {
			if flag&4 != 0 {
				r.constExpr(globals)
			} else {
				r.u32()
			}
			if r.err != nil {
				return r.err
			}
		}
		if r.err != nil {
			return r.err
		}
	}
	if r.err == nil && !r.done() {
		return errors.New("trailing bytes")
	}
	return r.err
}

func checkData(body []byte, globals uint32) error {
	r := &reader{b: body}
	for range r.count() {
		switch flag := r.u32(); flag {
		case 0:
			r.constExpr(globals)
		case 1:
		case 2:
			r.u32()
			r.constExpr(globals)
		default:
			return fmt.Errorf("%w: data segment kind %d", ErrUnsupported, flag)
		}
		r.bytes(int(r.u32()))
		if r.err != nil {
			return r.err
		}
	}
	if r.err == nil && !r.done() {
		return errors.New("trailing bytes")
	}
	return r.err
}

func rewriteCode(body []byte, globals uint32, chk []byte) ([]byte, error) {
	r := &reader{b: body}
	n := r.count()
	out := binary.AppendUvarint(nil, uint64(n))
	var fn []byte
	for i := range n {
		size := r.u32()
		f := &reader{b: r.bytes(int(size))}
		if r.err != nil {
			return nil, fmt.Errorf("function %d: %w", i, r.err)
		}
		fn = fn[:0]
		for range f.count() {
			f.u32()
			f.valType()
		}
		fn = append(fn, f.b[:f.off]...)
		start := f.off
		depth := 1
		for depth > 0 && f.err == nil {
			if f.done() {
				f.fail(errors.New("function body ends inside a block"))
				break
			}
			op := f.instr(globals)
			switch op {
			case 0x02, 0x04:
				depth++
			case 0x03:
				depth++
				fn = append(fn, f.b[start:f.off]...)
				fn = append(fn, chk...)
				start = f.off
			case 0x0b:
				depth--
			}
		}
		if f.err == nil && !f.done() {
			f.fail(errors.New("bytes after the function's end"))
		}
		if f.err != nil {
			return nil, fmt.Errorf("function %d: %w", i, f.err)
		}
		fn = append(fn, f.b[start:]...)
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	if r.err == nil && !r.done() {
		return nil, errors.New("trailing bytes")
	}
	return out, r.err
}

// reader decodes a WASM binary; the first error sticks, and reads after it
// return zeros.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) done() bool { return r.err != nil || r.off >= len(r.b) }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(errors.New("unexpected end"))
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(errors.New("unexpected end"))
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

// leb reads an unsigned LEB128 of at most bits bits.
func (r *reader) leb(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift >= bits {
			r.fail(errors.New("LEB128 too long"))
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
}

func (r *reader) u32() uint32 { return uint32(r.leb(35)) }

// count reads a vector's length. Every element takes at least a byte, so a
// length beyond the bytes left is an error — found before looping over it.
func (r *reader) count() uint32 {
	n := r.u32()
	if r.err == nil && int64(n) > int64(len(r.b)-r.off) {
		r.fail(fmt.Errorf("a vector of %d elements in %d bytes", n, len(r.b)-r.off))
	}
	if r.err != nil {
		return 0
	}
	return n
}

// sleb skips a signed LEB128 of at most bits bits.
func (r *reader) sleb(bits uint) { r.leb(bits + 6) }

func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

func (r *reader) valType() {
	switch t := r.byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	default:
		r.fail(fmt.Errorf("%w: value type %#x", ErrUnsupported, t))
	}
}

func (r *reader) refType() {
	switch t := r.byte(); t {
	case 0x70, 0x6f:
	default:
		r.fail(fmt.Errorf("%w: reference type %#x", ErrUnsupported, t))
	}
}

func (r *reader) limits() {
	flag := r.byte()
	if flag > 3 { // 64-bit or custom page sizes
		r.fail(fmt.Errorf("%w: limits flag %#x", ErrUnsupported, flag))
	}
	r.u32()
	if flag&1 != 0 {
		r.u32()
	}
}

func (r *reader) blockType() {
	if r.off < len(r.b) {
		switch r.b[r.off] {
		case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
			r.off++
			return
		}
		if c := r.b[r.off]; c&0x40 != 0 && c < 0x80 {
			r.fail(fmt.Errorf("%w: block type %#x", ErrUnsupported, c))
			return
		}
	}
	r.sleb(33) // a type index
}

func (r *reader) memArg() {
	if align := r.u32(); align&0x40 != 0 {
		r.fail(fmt.Errorf("%w: several memories", ErrUnsupported))
	}
	r.u32()
}

func (r *reader) global(globals uint32) {
	if g := r.u32(); r.err == nil && g >= globals {
		r.fail(fmt.Errorf("global %d does not exist (the module has %d)", g, globals))
	}
}

// constExpr reads an initialiser up to its end.
func (r *reader) constExpr(globals uint32) {
	for r.err == nil {
		if r.instr(globals) == 0x0b {
			return
		}
	}
}

// instr reads one instruction with its immediates and returns its opcode.
func (r *reader) instr(globals uint32) byte {
	op := r.byte()
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4, op == 0xd1:
	case op >= 0x02 && op <= 0x04:
		r.blockType()
	case op == 0x0c, op == 0x0d, op == 0x10, op == 0x12, op >= 0x20 && op <= 0x22,
		op == 0x25, op == 0x26, op == 0x3f, op == 0x40, op == 0xd2:
		r.u32()
	case op == 0x0e:
		for range r.count() {
			r.u32()
		}
		r.u32()
	case op == 0x11, op == 0x13:
		r.u32()
		r.u32()
	case op == 0x1c:
		for range r.count() {
			r.valType()
		}
	case op == 0x23, op == 0x24:
		r.global(globals)
	case op >= 0x28 && op <= 0x3e:
		r.memArg()
	case op == 0x41:
		r.sleb(32)
	case op == 0x42:
		r.sleb(64)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0:
		r.refType()
	case op == 0xfc:
		r.misc()
	case op == 0xfd:
		r.simd()
	default:
		r.fail(fmt.Errorf("%w: opcode %#x", ErrUnsupported, op))
	}
	return op
}

// misc reads the 0xfc instructions: saturating truncation, bulk memory
// and tables.
func (r *reader) misc() {
	switch sub := r.u32(); {
	case sub <= 7:
	case sub == 8, sub == 10, sub == 12, sub == 14:
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
		r.u32()
	default:
		r.fail(fmt.Errorf("%w: opcode 0xfc %d", ErrUnsupported, sub))
	}
}

// simd reads the 0xfd (fixed-width SIMD) instructions.
func (r *reader) simd() {
	switch sub := r.u32(); {
	case sub <= 11, sub == 92, sub == 93:
		r.memArg()
	case sub == 12, sub == 13:
		r.bytes(16)
	case sub >= 21 && sub <= 34:
		r.byte()
	case sub >= 84 && sub <= 91:
		r.memArg()
		r.byte()
	case sub <= 255:
	default:
		r.fail(fmt.Errorf("%w: opcode 0xfd %d", ErrUnsupported, sub))
	}
}
