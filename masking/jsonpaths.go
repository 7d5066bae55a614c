package masking

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// JSONMasker removes gjson paths from the JSON bodies of REST (non-FHIR)
// routes. Bodies are held whole (bounded by Options.MaxResourceBytes) and
// pass the same validation as FHIR bodies. It is immutable and safe for
// concurrent use.
type JSONMasker struct {
	paths    []string
	maxBytes int
	maxDepth int
}

// CompileJSONPaths validates gjson paths (e.g. "diagnosis", "patient.ssn",
// "items.#.ssn", `claims.#(status=="draft")#.note`). Modifiers (@), pipes,
// multipaths and JSON-lines paths are refused: their results cannot be
// traced back to a place in the body, so what they match could not be
// removed with certainty.
func CompileJSONPaths(paths []string, opts Options) (*JSONMasker, error) {
	m := &JSONMasker{maxBytes: int(opts.MaxResourceBytes), maxDepth: opts.MaxDepth}
	if m.maxBytes <= 0 {
		m.maxBytes = DefaultMaxResourceBytes
	}
	if m.maxDepth <= 0 {
		m.maxDepth = DefaultMaxDepth
	}
	m.maxDepth = min(m.maxDepth, 1000)
	m.maxBytes = min(m.maxBytes, maxResourceBytes)
	var errs []error
	for i, p := range paths {
		switch {
		case strings.TrimSpace(p) == "":
			errs = append(errs, fmt.Errorf("json path %d: empty", i))
		case strings.ContainsAny(p, "@|{[!,") || strings.HasPrefix(p, ".."):
			errs = append(errs, fmt.Errorf("json path %d (%q): modifiers, pipes, multipaths and JSON lines are not supported", i, p))
		default:
			m.paths = append(m.paths, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// Mask returns body with every value matched by any path removed (the
// member, or the array element), and how many values were removed. The
// body must be one JSON value (object or array) passing the same checks as
// FHIR bodies; member names written with escapes are re-encoded first so
// gjson and the client read the same names. Masked output is verified: if
// any path still matches, Mask fails rather than return it. The result may
// share memory with body.
func (m *JSONMasker) Mask(body []byte) ([]byte, int, error) {
	if len(body) > m.maxBytes {
		return nil, 0, unmaskable(ErrTooLarge, "the body exceeds %d bytes", m.maxBytes)
	}
	v := validator{maxDepth: m.maxDepth}
	start := skipWS(body, 0)
	n, err := v.validate(body[start:], 0)
	if err == errShort {
		err = ErrMalformed
	}
	if err != nil {
		return nil, 0, wrapSyntax(err)
	}
	if skipWS(body, start+n) != len(body) {
		return nil, 0, unmaskable(ErrMalformed, "data after the end of the JSON document")
	}
	doc := body[start : start+n]
	if c := doc[0]; c != '{' && c != '[' {
		return nil, 0, unmaskable(ErrMalformed, "the body is not a JSON object or array")
	}
	if v.escapedKey {
		doc = appendCanonical(nil, doc, nil)
	}
	var targets []int
	for _, p := range m.paths {
		r := gjson.GetBytes(doc, p)
		if !r.Exists() {
			continue
		}
		switch {
		case r.Indexes != nil:
			targets = append(targets, r.Indexes...)
		case r.Index > 0:
			targets = append(targets, r.Index)
		default:
			return nil, 0, unmaskable(ErrMalformed, "json path %d matched a value that cannot be located", slices.Index(m.paths, p))
		}
	}
	if len(targets) == 0 {
		return doc, 0, nil
	}
	slices.Sort(targets)
	count := 0
	out := stripAt(make([]byte, 0, len(doc)), doc, 0, targets, &count)
	for _, p := range m.paths {
		if r := gjson.GetBytes(out, p); r.Exists() && !(r.IsArray() && len(r.Array()) == 0) {
			return nil, 0, unmaskable(ErrMalformed, "json path %d still matches after masking", slices.Index(m.paths, p))
		}
	}
	return out, count, nil
}

// stripAt copies the validated value b (at absolute offset off in the
// document) leaving out every member value or element starting at one of
// the sorted offsets in targets.
func stripAt(dst, b []byte, off int, targets []int, count *int) []byte {
	hit := func(at int) bool {
		_, found := slices.BinarySearch(targets, at)
		if found {
			*count++
		}
		return found
	}
	switch b[0] {
	case '{':
		dst = append(dst, '{')
		mb := newMembers(b)
		n := 0
		for {
			k, v, ok := mb.next()
			if !ok {
				break
			}
			at := off + mb.i - len(v)
			if hit(at) {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendKey(dst, k, nil)
			dst = stripAt(dst, v, at, targets, count)
		}
		return append(dst, '}')
	case '[':
		dst = append(dst, '[')
		e := newElements(b)
		n := 0
		for {
			el, ok := e.next()
			if !ok {
				break
			}
			at := off + e.i - len(el)
			if hit(at) {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = stripAt(dst, el, at, targets, count)
		}
		return append(dst, ']')
	}
	return append(dst, b...)
}
