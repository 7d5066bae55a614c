package masking

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// Helpers over bytes the validator has already accepted: they trust the
// structure and never re-check it.

// strStop marks the bytes that end a run inside a string.
var strStop = [256]bool{'"': true, '\\': true}

// structural marks the bytes skipValue must look at inside a container.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// skipString returns the offset past the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q, bs := x^0x2222222222222222, x^0x5c5c5c5c5c5c5c5c
			if ((q-0x0101010101010101)&^q|(bs-0x0101010101010101)&^bs)&0x8080808080808080 != 0 {
				break
			}
			i += 8
		}
		for i < len(b) && !strStop[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		if b[i] == '"' {
			return i + 1
		}
		i += 2 // an escape: the next byte cannot end the string
	}
	return len(b) // unreachable on validated input
}

// skipValue returns the offset past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			for i < len(b) && !structural[b[i]] {
				i++
			}
			if i >= len(b) {
				break
			}
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			default:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// tape records where every object and array of a validated value ends, so
// the walker skips a subtree without scanning it again, and where each
// object's member records are. It holds (start, end, first, count) per
// container in document order, offsets relative to the start of the
// validated value; an object's members are records first..first+count of
// the member tape, each (name quote offset, name length as written, value
// start, value end).
type tape []int32

// tapeCursor looks containers up in a tape. The walker asks in document
// order, so the search gallops forward from the last hit: O(1) for the next
// sibling, O(log n) past a skipped subtree.
type tapeCursor struct {
	t    tape
	mt   []int32
	hint int
}

// find returns the tape index of the container starting at pos, or -1.
func (c *tapeCursor) find(pos int) int {
	t, n := c.t, len(c.t)/4
	lo := c.hint
	if lo < n && int(t[4*lo]) == pos {
		c.hint = lo + 1 // the usual case: the container after the last one
		return lo
	}
	if lo >= n || int(t[4*lo]) > pos {
		lo = 0
	}
	step := 1
	for lo+step < n && int(t[4*(lo+step)]) <= pos {
		lo += step
		step *= 2
	}
	hi := min(lo+step, n)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch s := int(t[4*mid]); {
		case s == pos:
			c.hint = mid + 1
			return mid
		case s < pos:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return -1
}

// end returns the offset past the container starting at pos, or -1.
func (c *tapeCursor) end(pos int) int {
	if k := c.find(pos); k >= 0 {
		return int(c.t[4*k+1])
	}
	return -1
}

// memberRecords returns the member records of the object starting at pos.
func (c *tapeCursor) memberRecords(pos int) ([]int32, bool) {
	k := c.find(pos)
	if k < 0 {
		return nil, false
	}
	first, count := int(c.t[4*k+2]), int(c.t[4*k+3])
	if 4*(first+count) > len(c.mt) {
		return nil, false
	}
	return c.mt[4*first : 4*(first+count)], true
}

// skip is skipValue for a value at offset off+i of the taped document.
func (c *tapeCursor) skip(b []byte, i, off int) int {
	if ch := b[i]; (ch == '{' || ch == '[') && c != nil {
		if e := c.end(off + i); e > off+i {
			return e - off
		}
	}
	return skipValue(b, i)
}

// members iterates over the members of the object b (validated, starting at
// '{'). next returns the raw key (between the quotes), the value span and
// false when there are no more members. With a tape, off is b's offset in
// the taped document.
type members struct {
	b   []byte
	i   int
	off int
	tp  *tapeCursor
	// keyAt is where the last member returned starts (its key's quote).
	keyAt int
	// plainKeys: no member name in the document has an escape, so a name
	// ends at the next quote.
	plainKeys bool
	// recs are the object's member records from the tape, when taped.
	recs  []int32
	taped bool
}

func newMembers(b []byte) members { return members{b: b, i: 1} }

func newMembersAt(b []byte, off int, tp *tapeCursor) members {
	m := members{b: b, i: 1, off: off, tp: tp}
	if tp != nil {
		m.recs, m.taped = tp.memberRecords(off)
	}
	return m
}

// valOff is the document offset of the value next last returned.
func (m *members) valOff(val []byte) int { return m.off + m.i - len(val) }

func (m *members) next() (key []byte, val []byte, ok bool) {
	if !m.taped {
		return m.scan()
	}
	if len(m.recs) < 4 {
		return nil, nil, false
	}
	r := m.recs[:4:4]
	m.recs = m.recs[4:]
	at, ve := int(r[0])-m.off, int(r[3])-m.off
	m.keyAt, m.i = at, ve
	return m.b[at+1 : at+1+int(r[1])], m.b[int(r[2])-m.off : ve], true
}

// scan is next without a tape.
func (m *members) scan() (key []byte, val []byte, ok bool) {
	b := m.b
	i := skipWS(b, m.i)
	if i >= len(b) || b[i] == '}' {
		return nil, nil, false
	}
	if b[i] == ',' {
		i = skipWS(b, i+1)
	}
	m.keyAt = i
	var end int
	if m.plainKeys {
		end = i + 1
		for b[end] != '"' {
			end++
		}
		end++
	} else {
		end = skipString(b, i)
	}
	key = b[i+1 : end-1]
	i = skipWS(b, end)
	i = skipWS(b, i+1) // ':'
	vend := m.tp.skip(b, i, m.off)
	m.i = vend
	return key, b[i:vend], true
}

// elements iterates over the elements of the array b (validated, '[').
type elements struct {
	b   []byte
	i   int
	off int
	tp  *tapeCursor
}

func newElements(b []byte) elements { return elements{b: b, i: 1} }

func newElementsAt(b []byte, off int, tp *tapeCursor) elements {
	return elements{b: b, i: 1, off: off, tp: tp}
}

// elOff is the document offset of the element next last returned.
func (e *elements) elOff(el []byte) int { return e.off + e.i - len(el) }

func (e *elements) next() ([]byte, bool) {
	b := e.b
	i := skipWS(b, e.i)
	if i >= len(b) || b[i] == ']' {
		return nil, false
	}
	if b[i] == ',' {
		i = skipWS(b, i+1)
	}
	end := e.tp.skip(b, i, e.off)
	e.i = end
	return b[i:end], true
}

// appendUnescaped appends the decoded content of a validated JSON string
// body (without quotes).
func appendUnescaped(dst, s []byte) []byte {
	for len(s) > 0 {
		j := bytes.IndexByte(s, '\\')
		if j < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:j]...)
		s = s[j:]
		switch s[1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(s, 2)
			if r >= 0xD800 && r <= 0xDBFF {
				lo, _ := hex4(s, 8)
				r = (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000
				s = s[6:]
			}
			dst = utf8.AppendRune(dst, r)
			s = s[6:]
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[1])
		}
		s = s[2:]
	}
	return dst
}

// stringValue decodes the validated JSON string v (with quotes) into
// scratch, or returns its body directly when it has no escapes.
func stringValue(v []byte, scratch []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	body := v[1 : len(v)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return body, true
	}
	return appendUnescaped(scratch[:0], body), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a canonical JSON string: only '"', '\\'
// and control characters are escaped.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// findMember returns the value of member name in the validated object b.
func findMember(b []byte, name string, scratch []byte) ([]byte, bool) {
	return findMemberAt(b, 0, nil, name, scratch)
}

// findMemberAt is findMember for an object at offset off of the document
// tp tapes: it reads the member records instead of scanning the values.
func findMemberAt(b []byte, off int, tp *tapeCursor, name string, scratch []byte) ([]byte, bool) {
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	m := newMembersAt(b, off, tp)
	for {
		k, v, ok := m.next()
		if !ok {
			return nil, false
		}
		if string(k) == name {
			return v, true
		}
		if bytes.IndexByte(k, '\\') >= 0 && string(appendUnescaped(scratch[:0], k)) == name {
			return v, true
		}
	}
}

// appendCanonical appends the validated value v with every member name
// re-encoded canonically; string values and numbers are copied as they are.
func appendCanonical(dst, v []byte, scratch []byte) []byte {
	switch v[0] {
	case '{':
		dst = append(dst, '{')
		m := newMembers(v)
		first := true
		for {
			k, val, ok := m.next()
			if !ok {
				break
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendKey(dst, k, scratch)
			dst = appendCanonical(dst, val, scratch)
		}
		return append(dst, '}')
	case '[':
		dst = append(dst, '[')
		e := newElements(v)
		first := true
		for {
			el, ok := e.next()
			if !ok {
				break
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendCanonical(dst, el, scratch)
		}
		return append(dst, ']')
	}
	return append(dst, v...)
}

// appendKey appends `"name":` for a raw (validated, maybe escaped) key.
func appendKey(dst, rawKey []byte, scratch []byte) []byte {
	if bytes.IndexByte(rawKey, '\\') < 0 {
		dst = append(dst, '"')
		dst = append(dst, rawKey...)
		return append(dst, '"', ':')
	}
	dst = appendJSONString(dst, appendUnescaped(scratch[:0], rawKey))
	return append(dst, ':')
}
