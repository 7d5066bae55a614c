package masking

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"unicode"
	"unicode/utf8"
)

// The validator is the fail-closed gate: every byte the walker later copies
// through has passed it. It accepts exactly RFC 8259 JSON and refuses, in
// addition, what makes parsers disagree: duplicate member names (compared
// after decoding escapes), invalid UTF-8, lone surrogate escapes, and
// nesting deeper than the configured limit. Agreement matters because the
// agent's parser, not ours, decides what the agent sees.

// errShort reports that the buffer ended inside the value: the caller reads
// more input and validates again from the value's start.
var errShort = errors.New("masking: value continues past the buffer")

// maxLinearKeys is the member count up to which duplicate keys are found by
// comparing with every earlier key; FHIR objects are almost always smaller.
const maxLinearKeys = 24

type keyRef struct {
	off, n  int32
	inArena bool
	wide    bool // holds non-ASCII bytes
	// sig is the length and case-folded first and last bytes of an ASCII
	// name: two ASCII names with different sigs cannot collide.
	sig int32
}

type validator struct {
	maxDepth int
	// escapedKey is set when any member name used an escape: the walker then
	// re-encodes every name canonically.
	escapedKey bool
	keys       []keyRef
	arena      []byte
	tape       tape
	mtape      []int32 // member records (see tape)
	// recs are the member records of the objects still open, in step with
	// keys: (name quote offset, name length as written, value start, value
	// end). An object's records move to mtape in one copy when it closes
	// (after those of the objects nested in it).
	recs []int32
	big  []map[string]struct{}
}

// validate checks that b starts with one complete JSON value (after no
// whitespace) and returns the offset just past it. depth is the nesting
// level of the value's container.
func (v *validator) validate(b []byte, depth int) (int, error) {
	v.keys, v.arena, v.tape, v.mtape, v.recs, v.escapedKey = v.keys[:0], v.arena[:0], v.tape[:0], v.mtape[:0], v.recs[:0], false
	return v.value(b, 0, depth)
}

func (v *validator) value(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, errShort
	}
	switch c := b[i]; c {
	case '{':
		return v.members(b, i, depth+1)
	case '[':
		return v.array(b, i, depth+1)
	case '"':
		end, _, err := validString(b, i)
		return end, err
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return number(b, i)
		}
	}
	return i, ErrMalformed
}

// sigBit is the bit of an object's seen-set that stands for sig.
func sigBit(sig int32) uint64 { return 1 << (uint32(sig) * 0x9E3779B1 >> 26) }

// members validates the object at b[i] == '{'. Its names are kept in
// v.keys (and v.arena) and its member records in v.recs while it is open;
// after an error the stacks are left as they are (validate resets them).
func (v *validator) members(b []byte, i, depth int) (int, error) {
	if depth > v.maxDepth {
		return i, ErrTooDeep
	}
	base, arenaBase, recBase := len(v.keys), len(v.arena), len(v.recs)
	ti := len(v.tape)
	v.tape = append(v.tape, int32(i), 0, 0, 0)
	i = skipWS(b, i+1)
	if i >= len(b) {
		return i, errShort
	}
	if b[i] == '}' {
		v.tape[ti+1] = int32(i + 1)
		return i + 1, nil
	}
	// seen holds the sigBit of every name so far, and slow is set once a
	// name is not ASCII. While slow is clear and fewer than maxLinearKeys
	// names are in, a name whose bit is clear cannot collide with an
	// earlier one (ASCII names equal under case folding have equal sigs)
	// and skips addKey's comparisons: the usual object is checked in
	// linear time, not quadratic. Anything else goes through addKey.
	var seen uint64
	slow := false
	for {
		if b[i] != '"' {
			return i, ErrMalformed
		}
		at := i
		// validString's fast path, inline: a call here costs more than
		// scanning a short name (every live value is reloaded after it).
		// Bytes before j are plain; a quote at j ends the name.
		j := i + 1
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			q, bs := x^0x2222222222222222, x^0x5c5c5c5c5c5c5c5c
			if m := (x | (x - 0x2020202020202020) | ((q - 0x0101010101010101) &^ q) | ((bs - 0x0101010101010101) &^ bs)) & 0x8080808080808080; m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		var end int
		var ref keyRef
		if j < len(b) && b[j] == '"' {
			end = j + 1
			ref = keyRef{off: int32(i + 1), n: int32(j - i - 1)}
			if j > i+1 {
				ref.sig = int32((j-i-1)<<16 | int(b[i+1]|0x20)<<8 | int(b[j-1]|0x20))
			}
		} else {
			var err error
			if end, ref, err = v.slowKey(b, i); err != nil {
				return end, err
			}
			slow = slow || ref.wide
		}
		bit := sigBit(ref.sig)
		if !slow && seen&bit == 0 && len(v.keys)-base < maxLinearKeys {
			v.keys = append(v.keys, ref)
		} else if err := v.addKey(b, v.keyBytes(b, ref), ref, base, depth); err != nil {
			return i, err
		}
		seen |= bit
		// compact JSON has no whitespace between tokens: look before
		// calling skipWS
		i = end
		if i < len(b) && b[i] != ':' {
			i = skipWS(b, i)
		}
		if i >= len(b) {
			return i, errShort
		}
		if b[i] != ':' {
			return i, ErrMalformed
		}
		vs := i + 1
		if vs < len(b) && b[vs] <= ' ' {
			vs = skipWS(b, vs)
		}
		if vs < len(b) && b[vs] == '"' {
			// the same inline fast path for a string value
			j := vs + 1
			for j+8 <= len(b) {
				x := binary.LittleEndian.Uint64(b[j:])
				q, bs := x^0x2222222222222222, x^0x5c5c5c5c5c5c5c5c
				if m := (x | (x - 0x2020202020202020) | ((q - 0x0101010101010101) &^ q) | ((bs - 0x0101010101010101) &^ bs)) & 0x8080808080808080; m != 0 {
					j += bits.TrailingZeros64(m) >> 3
					break
				}
				j += 8
			}
			if j < len(b) && b[j] == '"' {
				i = j + 1
			} else {
				var err error
				if i, _, err = validString(b, vs); err != nil {
					return i, err
				}
			}
		} else {
			var err error
			if i, err = v.value(b, vs, depth); err != nil {
				return i, err
			}
		}
		v.recs = append(v.recs, int32(at), int32(end-at-2), int32(vs), int32(i))
		if i < len(b) && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		if i >= len(b) {
			return i, errShort
		}
		switch b[i] {
		case ',':
			i++
			if i < len(b) && b[i] <= ' ' {
				i = skipWS(b, i)
			}
			if i >= len(b) {
				return i, errShort
			}
		case '}':
			v.tape[ti+1] = int32(i + 1)
			v.tape[ti+2] = int32(len(v.mtape) / 4)
			v.tape[ti+3] = int32(len(v.keys) - base)
			v.mtape = append(v.mtape, v.recs[recBase:]...)
			v.keys, v.arena, v.recs = v.keys[:base], v.arena[:arenaBase], v.recs[:recBase]
			return i + 1, nil
		default:
			return i, ErrMalformed
		}
	}
}

// slowKey validates the member name at b[i] == '"' that the inline scan
// in members could not: one with an escape (decoded into the arena) or with
// non-ASCII bytes (wide), or one the buffer cuts.
func (v *validator) slowKey(b []byte, i int) (int, keyRef, error) {
	end, esc, err := validString(b, i)
	if err != nil {
		return end, keyRef{}, err
	}
	kb := b[i+1 : end-1]
	ref := keyRef{off: int32(i + 1), n: int32(len(kb))}
	if esc&strEscaped != 0 {
		v.escapedKey = true
		start := len(v.arena)
		v.arena = appendUnescaped(v.arena, kb)
		kb = v.arena[start:]
		if hasControl(kb) {
			return i, keyRef{}, ErrMalformed // member names never hold control characters
		}
		ref.off, ref.n, ref.inArena = int32(start), int32(len(kb)), true
	}
	if esc != 0 && !isASCII(kb) {
		ref.wide = true
	} else if n := len(kb); n > 0 {
		ref.sig = int32(n<<16 | int(kb[0]|0x20)<<8 | int(kb[n-1]|0x20))
	}
	return end, ref, nil
}

func (v *validator) keyBytes(b []byte, r keyRef) []byte {
	if r.inArena {
		return v.arena[r.off : r.off+r.n]
	}
	return b[r.off : r.off+r.n]
}

// addKey records a member name and refuses one that equals an earlier name
// of the same object under Unicode case folding: Go's encoding/json, for
// one, fills a struct field from any case variant of its name, so "Subject"
// after "subject" would be read by some clients and not by others.
func (v *validator) addKey(b, k []byte, ref keyRef, base, depth int) error {
	n := len(v.keys) - base
	if n < maxLinearKeys {
		for _, other := range v.keys[base:] {
			wide := other.wide || ref.wide
			if !wide && other.sig != ref.sig {
				continue
			}
			if keysCollide(v.keyBytes(b, other), k, wide) {
				return ErrDuplicateKey
			}
		}
		v.keys = append(v.keys, ref)
		return nil
	}
	for len(v.big) <= depth {
		v.big = append(v.big, nil)
	}
	m := v.big[depth]
	if m == nil {
		m = map[string]struct{}{}
		v.big[depth] = m
	}
	if n == maxLinearKeys {
		clear(m)
		for _, other := range v.keys[base:] {
			m[foldKey(v.keyBytes(b, other))] = struct{}{}
		}
	}
	fk := foldKey(k)
	if _, dup := m[fk]; dup {
		return ErrDuplicateKey
	}
	m[fk] = struct{}{}
	v.keys = append(v.keys, ref)
	return nil
}

// keysCollide reports whether two member names are equal under case
// folding.
func keysCollide(a, b []byte, wide bool) bool {
	if wide {
		return bytes.EqualFold(a, b)
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if x, y := a[i], b[i]; x != y && (x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z') {
			return false
		}
	}
	return true
}

// foldKey maps a name to one representative of its case-folding class
// (every rune replaced by the smallest rune of its fold orbit).
func foldKey(k []byte) string {
	out := make([]rune, 0, len(k))
	for _, r := range string(k) {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		out = append(out, m)
	}
	return string(out)
}

func hasControl(k []byte) bool {
	for _, c := range k {
		if c < 0x20 {
			return true
		}
	}
	return false
}

func isASCII(k []byte) bool {
	for _, c := range k {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (v *validator) array(b []byte, i, depth int) (int, error) {
	if depth > v.maxDepth {
		return i, ErrTooDeep
	}
	ti := len(v.tape)
	v.tape = append(v.tape, int32(i), 0, 0, 0)
	i = skipWS(b, i+1)
	if i >= len(b) {
		return i, errShort
	}
	if b[i] == ']' {
		v.tape[ti+1] = int32(i + 1)
		return i + 1, nil
	}
	for {
		var err error
		switch {
		case i >= len(b):
			return i, errShort
		case b[i] == '{':
			i, err = v.members(b, i, depth+1)
		case b[i] == '"':
			i, _, err = validString(b, i)
		default:
			i, err = v.value(b, i, depth)
		}
		if err != nil {
			return i, err
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return i, errShort
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			v.tape[ti+1] = int32(i + 1)
			return i + 1, nil
		default:
			return i, ErrMalformed
		}
	}
}

func literal(b []byte, i int, lit string) (int, error) {
	n := min(len(b)-i, len(lit))
	if string(b[i:i+n]) != lit[:n] {
		return i, ErrMalformed
	}
	if n < len(lit) {
		return i, errShort
	}
	return i + n, nil
}

func number(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, errShort
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, ErrMalformed
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			if j >= len(b) {
				return j, errShort
			}
			return j, ErrMalformed
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			if j >= len(b) {
				return j, errShort
			}
			return j, ErrMalformed
		}
		i = j
	}
	if i >= len(b) {
		return i, errShort // the number may go on in the next read
	}
	return i, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// strSafe marks the ASCII bytes that stand for themselves inside a string.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// String flags reported by validString.
const (
	strEscaped  = 1 << iota // used a backslash escape
	strNonASCII             // holds raw non-ASCII bytes
)

// validString checks the string starting at b[i] == '"' and returns the
// offset past its closing quote and its str* flags.
func validString(b []byte, i int) (int, uint8, error) {
	var esc uint8
	i++
	for {
		// eight bytes at a time while none is a quote, a backslash, a
		// control character or non-ASCII (the usual FHIR string)
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q, bs := x^0x2222222222222222, x^0x5c5c5c5c5c5c5c5c
			if m := (x | (x - 0x2020202020202020) | ((q - 0x0101010101010101) &^ q) | ((bs - 0x0101010101010101) &^ bs)) & 0x8080808080808080; m != 0 {
				// the lowest flagged byte is a real one (borrows only
				// run upward), so jump straight to it
				i += bits.TrailingZeros64(m) >> 3
				goto special
			}
			i += 8
		}
		for i < len(b) && strSafe[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, esc, errShort
		}
	special:
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc |= strEscaped
			n, err := validEscape(b, i)
			if err != nil {
				return i, esc, err
			}
			i += n
		case c < 0x20:
			return i, esc, ErrMalformed
		default:
			esc |= strNonASCII
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				if !utf8.FullRune(b[i:]) {
					return i, esc, errShort
				}
				return i, esc, ErrInvalidUTF8
			}
			i += size
		}
	}
}

// validEscape checks the escape at b[i] == '\\' and returns its length.
// A \u escape of a surrogate must be a high-low pair: decoders replace lone
// halves differently (U+FFFD, error, or raw), so they are refused.
func validEscape(b []byte, i int) (int, error) {
	if i+1 >= len(b) {
		return 0, errShort
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
	default:
		return 0, ErrMalformed
	}
	r, err := hex4(b, i+2)
	if err != nil {
		return 0, err
	}
	switch {
	case r == 0:
		// a NUL ends the string for C-string based parsers, which would
		// then read another value than the masker compared
		return 0, ErrMalformed
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, ErrMalformed
	case r >= 0xD800 && r <= 0xDBFF:
		if i+8 > len(b) {
			return 0, errShort
		}
		if b[i+6] != '\\' || b[i+7] != 'u' {
			return 0, ErrMalformed
		}
		lo, err := hex4(b, i+8)
		if err != nil {
			return 0, err
		}
		if lo < 0xDC00 || lo > 0xDFFF {
			return 0, ErrMalformed
		}
		return 12, nil
	}
	return 6, nil
}

func hex4(b []byte, i int) (rune, error) {
	if i+4 > len(b) {
		for _, c := range b[i:] {
			if unhex(c) < 0 {
				return 0, ErrMalformed
			}
		}
		return 0, errShort
	}
	var r rune
	for _, c := range b[i : i+4] {
		h := unhex(c)
		if h < 0 {
			return 0, ErrMalformed
		}
		r = r<<4 | rune(h)
	}
	return r, nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}
