package masking

import (
	"encoding/base64"
	"unicode/utf8"
)

// The four actions, and link rewriting: what replaces an element once the
// walker has decided a rule hits it.

// mask applies rule id to one element and reports whether something was
// written in its place.
func (w *walker) mask(f *field, el []byte, id int32) bool {
	r := w.plan.rules[id]
	w.counts[id]++
	w.masked++
	switch r.action {
	case actRedact:
		w.out = append(w.out, r.replacement...)
		return true
	case actHash:
		s, ok := stringValue(el, w.scratch)
		if !ok {
			s = el
		}
		w.mac.Reset()
		w.mac.Write(s)
		w.tmp = w.mac.Sum(w.tmp[:0])
		w.out = append(w.out, '"')
		w.out = base64.RawURLEncoding.AppendEncode(w.out, w.tmp)
		w.out = append(w.out, '"')
		return true
	case actGeneralize:
		s, ok := stringValue(el, w.scratch)
		if !ok {
			return false
		}
		if f.key == "postalCode" {
			n, i := 0, 0
			for i < len(s) && n < 3 {
				_, size := utf8.DecodeRune(s[i:])
				i += size
				n++
			}
			w.out = appendJSONString(w.out, s[:i])
			return true
		}
		if isDate(s) {
			w.out = appendJSONString(w.out, s[:4])
			return true
		}
		return false // neither a date nor a postal code: fail closed, remove
	}
	return false
}

// isDate reports whether s has the shape of a FHIR date, dateTime or
// instant: YYYY, YYYY-MM, YYYY-MM-DD, or YYYY-MM-DDThh:mm...
func isDate(s []byte) bool {
	if len(s) < 4 {
		return false
	}
	for _, c := range s[:4] {
		if c < '0' || c > '9' {
			return false
		}
	}
	switch {
	case len(s) == 4:
		return true
	case len(s) >= 7 && s[4] == '-' && isDigit(s[5]) && isDigit(s[6]):
		return len(s) == 7 || len(s) >= 10 && s[7] == '-' && isDigit(s[8]) && isDigit(s[9]) && (len(s) == 10 || s[10] == 'T')
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// rewriteURL writes the string el with the upstream base replaced by the
// public base when it starts with it on a URL boundary.
func (w *walker) rewriteURL(el []byte) {
	s, ok := stringValue(el, w.scratch)
	up := w.rw.set.opts.UpstreamBase
	if ok && len(s) >= len(up) && string(s[:len(up)]) == up &&
		(len(s) == len(up) || s[len(up)] == '/' || s[len(up)] == '?' || s[len(up)] == '#') {
		if len(s) == len(el)-2 {
			// no escapes: the rest is canonical as written (validated: no
			// quote, backslash or control character in it)
			w.out = append(w.out, w.rw.set.pubJSON...)
			w.out = append(w.out, s[len(up):]...)
			w.out = append(w.out, '"')
			return
		}
		w.tmp = append(append(w.tmp[:0], w.rw.set.opts.PublicBase...), s[len(up):]...)
		w.out = appendJSONString(w.out, w.tmp)
		return
	}
	w.out = append(w.out, el...)
}
