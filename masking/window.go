package masking

import (
	"bytes"
	"errors"
	"io"
)

// window is the rewriter's only input buffer. A value is validated in place
// where it lies in the buffer; when the buffer ends inside it, more input is
// read (the buffer doubles when the value fills it) and the value is
// validated again from its start. Reads fill the buffer, so a value is
// re-validated O(log size) times, not once per network read.
type window struct {
	r          io.Reader
	buf        []byte
	start, end int
	eof        bool
	limit      int // the largest value that may be held
}

const windowSize = 128 << 10

func (wn *window) data() []byte { return wn.buf[wn.start:wn.end] }

// more reads input, keeping data(). It returns false at end of input.
func (wn *window) more() (bool, error) {
	if wn.eof {
		return false, nil
	}
	if wn.start > 0 {
		wn.end = copy(wn.buf, wn.buf[wn.start:wn.end])
		wn.start = 0
	}
	if wn.end == len(wn.buf) {
		if wn.end > wn.limit {
			return false, unmaskable(ErrTooLarge, "a resource exceeds %d bytes", wn.limit)
		}
		n := min(2*len(wn.buf), wn.limit+1024)
		nb := make([]byte, max(n, windowSize))
		copy(nb, wn.buf[:wn.end])
		wn.buf = nb
	}
	for wn.end < len(wn.buf) {
		n, err := wn.r.Read(wn.buf[wn.end:])
		wn.end += n
		if errors.Is(err, io.EOF) {
			wn.eof = true
			break
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// peek returns the next byte after whitespace without consuming it; ok is
// false at end of input.
func (wn *window) peek() (byte, bool, error) {
	for {
		d := wn.data()
		i := skipWS(d, 0)
		wn.start += i
		if i < len(d) {
			return d[i], true, nil
		}
		more, err := wn.more()
		if err != nil || !more {
			return 0, false, err
		}
	}
}

// expect consumes the byte c after whitespace.
func (wn *window) expect(c byte) error {
	got, ok, err := wn.peek()
	if err != nil {
		return err
	}
	if !ok {
		return unmaskable(ErrMalformed, "the body ends early")
	}
	if got != c {
		return unmaskable(ErrMalformed, "unexpected %q in the body", got)
	}
	wn.start++
	return nil
}

// value validates and consumes the next value; the returned slice is valid
// until the next read. depth is the nesting level of its container.
func (wn *window) value(v *validator, depth int) ([]byte, error) {
	if _, ok, err := wn.peek(); err != nil {
		return nil, err
	} else if !ok {
		return nil, unmaskable(ErrMalformed, "the body ends early")
	}
	for {
		d := wn.data()
		n, err := v.validate(d, depth)
		if err == errShort {
			if len(d) > wn.limit {
				return nil, unmaskable(ErrTooLarge, "a resource exceeds %d bytes", wn.limit)
			}
			more, err := wn.more()
			if err != nil {
				return nil, err
			}
			if !more {
				return nil, unmaskable(ErrMalformed, "the body ends inside a value")
			}
			continue
		}
		if err != nil {
			return nil, wrapSyntax(err)
		}
		if n > wn.limit {
			return nil, unmaskable(ErrTooLarge, "a resource exceeds %d bytes", wn.limit)
		}
		wn.start += n
		return d[:n:n], nil
	}
}

// line consumes the next line (without its '\n'); ok is false at the end.
func (wn *window) line() ([]byte, bool, error) {
	searched := 0
	for {
		d := wn.data()
		if i := bytes.IndexByte(d[searched:], '\n'); i >= 0 {
			wn.start += searched + i + 1
			return d[: searched+i : searched+i], true, nil
		}
		searched = len(d)
		if len(d) > wn.limit {
			return nil, false, unmaskable(ErrTooLarge, "an NDJSON line exceeds %d bytes", wn.limit)
		}
		more, err := wn.more()
		if err != nil {
			return nil, false, err
		}
		if !more {
			wn.start = wn.end
			return d, len(d) > 0, nil
		}
	}
}

// atEOF reports an error unless only whitespace is left.
func (wn *window) atEOF() error {
	_, ok, err := wn.peek()
	if err != nil {
		return err
	}
	if ok {
		return unmaskable(ErrMalformed, "data after the end of the JSON document")
	}
	return nil
}

// wrapSyntax turns a validator sentinel into the caller-facing error.
func wrapSyntax(err error) error {
	switch err {
	case ErrMalformed:
		return unmaskable(err, "the body is not well-formed JSON")
	case ErrInvalidUTF8:
		return unmaskable(err, "the body holds invalid UTF-8")
	case ErrDuplicateKey:
		return unmaskable(err, "an object repeats a member name")
	case ErrTooDeep:
		return unmaskable(err, "the body nests too deeply")
	}
	return err
}
