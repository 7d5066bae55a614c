package fhir

import (
	"encoding/binary"
	"math/bits"

	"github.com/tidwall/gjson"
)

// scanMembers reads raw once: it reports whether raw is exactly one valid
// JSON value and whether that value is an object, and for an object it sets
// values[k] to the raw bytes of the value of the first top-level member
// whose name, unescaped, is names[k] (nil when there is none). A later
// member of the same name is ignored, as gjson's Get ignores it.
//
// It accepts exactly what gjson.Valid accepts: RFC 8259 syntax, with any
// byte from 0x20 up inside strings (UTF-8 or not) and no limit on nesting
// (it recurses per level, as gjson does). PatientRefs used to validate with
// gjson.Valid and then re-scan the resource with one gjson.Get per
// compartment path; this single pass does the validation and all the
// top-level lookups at once, and must refuse what gjson refused so that
// invalid input still links to no patient.
func scanMembers(raw []byte, names []string, values [][]byte) (object, valid bool) {
	i := skipSpace(raw, 0)
	object = i < len(raw) && raw[i] == '{'
	if object {
		i, valid = scanObject(raw, i+1, names, values)
	} else {
		i, valid = scanValue(raw, i)
	}
	return object, valid && skipSpace(raw, i) == len(raw)
}

// scanValue reads the value starting at i and returns the index past it.
func scanValue(raw []byte, i int) (int, bool) {
	if i == len(raw) {
		return i, false
	}
	switch raw[i] {
	case '{':
		return scanObject(raw, i+1, nil, nil)
	case '[':
		return scanArray(raw, i+1)
	case '"':
		end, _, ok := scanString(raw, i+1)
		return end, ok
	case 't':
		return scanLiteral(raw, i, "true")
	case 'f':
		return scanLiteral(raw, i, "false")
	case 'n':
		return scanLiteral(raw, i, "null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return scanNumber(raw, i)
	}
	return i, false
}

// scanObject reads the rest of an object whose '{' is just before i and
// returns the index past its '}'. It records in values the first member of
// each of names, as scanMembers describes (nested objects pass no names).
func scanObject(raw []byte, i int, names []string, values [][]byte) (int, bool) {
	i = skipSpace(raw, i)
	if i < len(raw) && raw[i] == '}' {
		return i + 1, true
	}
	for {
		if i == len(raw) || raw[i] != '"' {
			return i, false
		}
		end, escaped, ok := scanString(raw, i+1)
		if !ok {
			return end, false
		}
		member := -1
		if len(names) > 0 {
			member = matchName(raw[i:end], escaped, names, values)
		}
		i = skipSpace(raw, end)
		if i == len(raw) || raw[i] != ':' {
			return i, false
		}
		i = skipSpace(raw, i+1)
		start := i
		if i, ok = scanValue(raw, i); !ok {
			return i, false
		}
		if member >= 0 {
			values[member] = raw[start:i]
		}
		i = skipSpace(raw, i)
		if i == len(raw) {
			return i, false
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanArray reads the rest of an array whose '[' is just before i and
// returns the index past its ']'.
func scanArray(raw []byte, i int) (int, bool) {
	i = skipSpace(raw, i)
	if i < len(raw) && raw[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = scanValue(raw, i); !ok {
			return i, false
		}
		i = skipSpace(raw, i)
		if i == len(raw) {
			return i, false
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// matchName returns the index of the name in names that the quoted JSON
// string quoted spells and whose value is not found yet, or -1. Names are
// compared unescaped, as gjson compares them: "\u0073ubject" is "subject".
func matchName(quoted []byte, escaped bool, names []string, values [][]byte) int {
	name := quoted[1 : len(quoted)-1]
	if escaped {
		// Rare in resources: let gjson unescape it, exactly as its Get
		// does before comparing.
		name = []byte(gjson.Parse(string(quoted)).Str)
	}
	for k, n := range names {
		if values[k] == nil && string(name) == n {
			return k
		}
	}
	return -1
}

// scanString reads the rest of a string whose opening quote is just before
// i and returns the index past its closing quote, and whether it holds an
// escape.
func scanString(raw []byte, i int) (end int, escaped, ok bool) {
	for {
		// Most of a resource is string content: skip plain bytes eight
		// at a time while eight remain, then one at a time.
		if len(raw)-i >= 8 {
			special := specialStringBytes(binary.LittleEndian.Uint64(raw[i:]))
			if special == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(special) / 8
		} else {
			for i < len(raw) && plainStringByte[raw[i]] {
				i++
			}
			if i == len(raw) {
				return i, escaped, false
			}
		}
		switch c := raw[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c < ' ':
			return i, escaped, false
		}
		// A backslash.
		escaped = true
		i++
		if i == len(raw) {
			return i, escaped, false
		}
		switch raw[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if len(raw)-i <= 4 || !isHex(raw[i+1]) || !isHex(raw[i+2]) || !isHex(raw[i+3]) || !isHex(raw[i+4]) {
				return i, escaped, false
			}
			i += 4
		default:
			return i, escaped, false
		}
		i++
	}
}

// specialStringBytes returns x, eight bytes of a string read little-endian,
// with the top bit of each byte set that is a quote, a backslash or a
// control character, except that bytes after the first such byte may be
// marked wrongly (a borrow of the subtractions below runs upwards from a
// byte that is marked rightly). So it is zero exactly when all eight bytes
// are plain, and its lowest mark is the first byte that is not.
func specialStringBytes(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := x ^ (ones * '"')      // zero bytes where x has '"'
	backslash := x ^ (ones * '\\') // zero bytes where x has '\\'
	// (v - ones) & ^v marks the zero bytes of v; (x - 0x20*ones) & ^x
	// marks the bytes of x below 0x20.
	return ((quote-ones)&^quote | (backslash-ones)&^backslash | (x-ones*' ')&^x) & highs
}

// plainStringByte marks the bytes that may stand unescaped in a JSON
// string and need no attention: all but control characters, the quote and
// the backslash.
var plainStringByte = func() (t [256]bool) {
	for c := ' '; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanNumber reads a number starting at i: an optional minus, an integer
// part without leading zeros, an optional fraction and an optional
// exponent. What may follow it is the caller's business.
func scanNumber(raw []byte, i int) (int, bool) {
	if raw[i] == '-' {
		i++
	}
	if i == len(raw) || !isDigit(raw[i]) {
		return i, false
	}
	if raw[i] == '0' {
		i++
	} else {
		i = skipDigits(raw, i)
	}
	if i < len(raw) && raw[i] == '.' {
		i++
		if i == len(raw) || !isDigit(raw[i]) {
			return i, false
		}
		i = skipDigits(raw, i)
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		if i == len(raw) || !isDigit(raw[i]) {
			return i, false
		}
		i = skipDigits(raw, i)
	}
	return i, true
}

// scanLiteral reads lit (true, false or null) at i.
func scanLiteral(raw []byte, i int, lit string) (int, bool) {
	if len(raw)-i < len(lit) || string(raw[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(raw []byte, i int) int {
	// Test for > ' ' first: most resources are sent without whitespace.
	for i < len(raw) && raw[i] <= ' ' && (raw[i] == ' ' || raw[i] == '\n' || raw[i] == '\r' || raw[i] == '\t') {
		i++
	}
	return i
}

func skipDigits(raw []byte, i int) int {
	for i < len(raw) && isDigit(raw[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
