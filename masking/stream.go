package masking

import (
	"io"
	"slices"
	"strings"
)

// streamBundle streams a top-level Bundle whose first member is
// "resourceType":"Bundle". It consumes nothing and returns false for any
// other document, which is then held whole.
func (w *walker) streamBundle(dst io.Writer, win *window, v *validator) (bool, error) {
	for {
		d := win.data()
		n, err := bundleHead(d, w.scratch)
		if err == errShort && len(d) < 4096 {
			more, err := win.more()
			if err != nil {
				return false, err
			}
			if more {
				continue
			}
		}
		if err != nil {
			return false, nil // not a streamable Bundle: the whole-value path judges it
		}
		win.start += n
		break
	}
	w.out = append(w.out, `{"resourceType":"Bundle"`...)
	seen := []string{"resourceType"}
	bt := w.bundle
	base := len(w.cs)
	for _, id := range w.plan.anchors[bt.id] {
		w.cs = append(w.cs, cursor{rule: id})
	}
	hi := len(w.cs)
	self := len(w.refSpans)
	w.refSpans = append(w.refSpans, refSpan{typ: bt})
	var id, version []byte
	for {
		c, ok, err := win.peek()
		if err != nil {
			return true, err
		}
		if !ok {
			return true, unmaskable(ErrMalformed, "the body ends inside the Bundle")
		}
		if c == '}' {
			win.start++
			break
		}
		if err := win.expect(','); err != nil {
			return true, err
		}
		key, escaped, err := w.streamKey(win)
		if err != nil {
			return true, err
		}
		if slices.ContainsFunc(seen, func(k string) bool { return strings.EqualFold(k, string(key)) }) {
			return true, unmaskable(ErrDuplicateKey, "the Bundle repeats a member name")
		}
		seen = append(seen, string(key))
		if string(key) == "entry" {
			w.canonical = escaped
			if err := w.streamEntries(dst, win, v, base, hi); err != nil {
				return true, err
			}
			continue
		}
		val, err := win.value(v, 1)
		if err != nil {
			return true, err
		}
		w.canonical = escaped || v.escapedKey
		w.tape = tapeCursor{t: v.tape, mt: v.mtape}
		switch string(key) {
		case "id":
			if s, ok := stringValue(val, w.scratch); ok {
				id = append(id[:0], s...)
			}
		case "meta":
			if vv, ok := findMember(val, "versionId", w.scratch); ok {
				if s, ok := stringValue(vv, w.scratch); ok {
					version = append(version[:0], s...)
				}
			}
		}
		run := rawRun{start: -1, has: true} // resourceType is written
		_, raw, err := w.member(bt, bt.lookup(key), key, val, 0, base, hi, nil, &run)
		if err != nil {
			return true, err
		}
		if raw {
			w.writeKey(key, true)
			w.out = append(w.out, val...)
		}
		if len(w.out) >= flushSize {
			if err := w.flush(dst); err != nil {
				return true, err
			}
		}
	}
	w.cs = w.cs[:base]
	// Only once the input is known to end here does the output get its
	// closing brace: a truncated or trailing-garbage body must not come out
	// as a complete document.
	if err := win.atEOF(); err != nil {
		return true, err
	}
	w.out = append(w.out, '}')
	sp := refSpan{typ: bt, id: int32(len(w.refArena))}
	w.refArena = append(w.refArena, id...)
	sp.idEnd = int32(len(w.refArena))
	w.refArena = append(w.refArena, version...)
	sp.vEnd = int32(len(w.refArena))
	w.refSpans[self] = sp
	return true, nil
}

// bundleHead matches `{ "resourceType" : "Bundle"` (escapes decoded) at
// the start of d and returns its length.
func bundleHead(d, scratch []byte) (int, error) {
	i := skipWS(d, 1)
	for n, want := range []string{"resourceType", "Bundle"} {
		if n == 1 {
			if i >= len(d) {
				return 0, errShort
			}
			if d[i] != ':' {
				return 0, ErrMalformed
			}
			i = skipWS(d, i+1)
		}
		if i >= len(d) {
			return 0, errShort
		}
		if d[i] != '"' {
			return 0, ErrMalformed
		}
		end, _, err := validString(d, i)
		if err != nil {
			return 0, err
		}
		if s, _ := stringValue(d[i:end], scratch); string(s) != want {
			return 0, ErrMalformed
		}
		i = skipWS(d, end)
	}
	return i, nil
}

// streamKey reads a member name and the ':' after it. The decoded name is
// valid until the next call.
func (w *walker) streamKey(win *window) ([]byte, bool, error) {
	c, ok, err := win.peek()
	if err != nil {
		return nil, false, err
	}
	if !ok || c != '"' {
		return nil, false, unmaskable(ErrMalformed, "a member name was expected")
	}
	for {
		d := win.data()
		end, flags, err := validString(d, 0)
		esc := flags&strEscaped != 0
		if err == errShort {
			if len(d) > win.limit {
				return nil, false, unmaskable(ErrTooLarge, "a member name exceeds %d bytes", win.limit)
			}
			more, rerr := win.more()
			if rerr != nil {
				return nil, false, rerr
			}
			if more {
				continue
			}
			err = ErrMalformed
		}
		if err != nil {
			return nil, false, wrapSyntax(err)
		}
		w.keybuf = appendUnescaped(w.keybuf[:0], d[1:end-1])
		win.start += end
		return w.keybuf, esc, win.expect(':')
	}
}

// streamEntries streams Bundle.entry, one element at a time. The member is
// written only once an entry survives, so a Bundle whose entries were all
// dropped has no entry at all (FHIR has no empty arrays).
func (w *walker) streamEntries(dst io.Writer, win *window, v *validator, lo, hi int) error {
	f := w.bundle.fields["entry"]
	base := len(w.cs)
	defer func() { w.cs = w.cs[:base] }()
	tlo, thi, clo, chi := w.transitions(f, []byte("entry"), false, lo, hi)
	if err := win.expect('['); err != nil {
		return err
	}
	n := 0
	for first := true; ; first = false {
		c, ok, err := win.peek()
		if err != nil {
			return err
		}
		if !ok {
			return unmaskable(ErrMalformed, "the body ends inside Bundle.entry")
		}
		if c == ']' {
			win.start++
			break
		}
		if !first {
			if err := win.expect(','); err != nil {
				return err
			}
		}
		el, err := win.value(v, 2)
		if err != nil {
			return err
		}
		w.canonical, w.tape = v.escapedKey, tapeCursor{t: v.tape, mt: v.mtape}
		mark := len(w.out)
		if n == 0 {
			w.out = append(w.out, `,"entry":[`...)
		} else {
			w.out = append(w.out, ',')
		}
		wrote, _, err := w.element(f, el, 0, tlo, thi, clo, chi)
		if err != nil {
			return err
		}
		if !wrote {
			w.out = w.out[:mark]
			continue
		}
		n++
		w.handOffRefs(1) // slot 0 is the streamed Bundle's own, filled at its end
		if len(w.out) >= flushSize {
			if err := w.flush(dst); err != nil {
				return err
			}
		}
	}
	if n > 0 {
		w.out = append(w.out, ']')
	}
	return nil
}
