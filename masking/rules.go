package masking

import (
	"errors"
	"fmt"
	"strings"
)

// RuleSpec is one configured mask rule, as written in the YAML config.
type RuleSpec struct {
	// Path is a FHIR element path. Its first segment is either a resource
	// type (Patient.telecom, Patient.address.line, Observation.value for
	// every value[x]) or an R4 complex data type, which makes the rule
	// type-wide: HumanName masks every HumanName in every resource,
	// Reference.display every Reference.display. A segment may be followed
	// by .where(element='literal') to restrict the rule to the elements
	// whose primitive child equals the literal (compared after decoding
	// JSON escapes): Patient.identifier.where(system='urn:x').value, or,
	// type-wide, Identifier.where(system='http://hl7.org/fhir/sid/us-ssn')
	// for that identifier in every resource.
	Path string
	// Action is what happens to each element the path names:
	//   - remove (the default when empty): the element goes, with its
	//     primitive extension sibling (_birthDate); an array left empty
	//     and an object left empty go too;
	//   - redact: the value becomes Replacement;
	//   - hash: the value becomes base64url(HMAC-SHA256(Options.HashKey,
	//     value)), unpadded: the same value gives the same pseudonym in every
	//     response, so records can still be joined;
	//   - generalize: a postalCode keeps its first three characters, a date,
	//     dateTime or instant keeps its year; any other value is removed
	//     (fail closed).
	// redact, hash and generalize need a primitive string element; the
	// primitive extension sibling is removed in every case. When rules
	// overlap on one element the most restrictive wins (remove, redact,
	// hash, generalize).
	Action string
	// Replacement is the string redact writes; empty means "REDACTED".
	Replacement string
}

// action is a compiled Action. A larger value is more restrictive and wins
// when several rules hit the same element.
type action uint8

const (
	actGeneralize action = iota + 1
	actHash
	actRedact
	actRemove
)

func parseAction(s string) (action, error) {
	switch s {
	case "", "remove":
		return actRemove, nil
	case "redact":
		return actRedact, nil
	case "hash":
		return actHash, nil
	case "generalize":
		return actGeneralize, nil
	}
	return 0, fmt.Errorf("unknown action %q (want remove, redact, hash or generalize)", s)
}

// step is one path segment after the anchor.
type step struct {
	keys    []string // the JSON keys it matches (several for a choice element)
	predKey string   // where(predKey='predVal'); "" when there is none
	predVal string
}

// rule is one compiled RuleSpec.
type rule struct {
	profile     string
	path        string
	anchor      *typeInfo
	typeWide    bool
	steps       []step
	anchorPred  *step // a type-wide rule's where(): Identifier.where(system='x')
	action      action
	replacement []byte // JSON string, for redact
}

func (r *rule) label() string { return r.profile + ":" + r.path }

// compileRule parses and validates one rule against the R4 schema.
func compileRule(profile string, spec RuleSpec, hashKey []byte) (*rule, error) {
	act, err := parseAction(strings.TrimSpace(spec.Action))
	if err != nil {
		return nil, err
	}
	segs, err := splitPath(strings.TrimSpace(spec.Path))
	if err != nil {
		return nil, err
	}
	sc := schema()
	r := &rule{profile: profile, path: strings.TrimSpace(spec.Path), action: act}
	if t := sc.resources[segs[0].name]; t != nil {
		r.anchor = t
	} else if t := sc.dataTypes[segs[0].name]; t != nil {
		r.anchor, r.typeWide = t, true
	} else {
		return nil, fmt.Errorf("%q is neither an R4 resource type nor an R4 data type", segs[0].name)
	}
	if p := segs[0]; p.predKey != "" {
		if !r.typeWide {
			return nil, errors.New("where() cannot follow a resource type (only a data type, as in Identifier.where(system='...'))")
		}
		pf := r.anchor.fields[p.predKey]
		if pf == nil || pf.kind != kindPrimitive {
			return nil, fmt.Errorf("where(%s=...): %q is not a primitive element of %s", p.predKey, p.predKey, p.name)
		}
		r.anchorPred = &step{predKey: p.predKey, predVal: p.predVal}
	}
	if len(segs) == 1 && !r.typeWide {
		return nil, errors.New("a path must name an element of the resource, not the whole resource")
	}
	t := r.anchor
	var last *field
	for i, seg := range segs[1:] {
		if t == nil {
			return nil, fmt.Errorf("%q: %s is a primitive and has no elements", seg.name, segs[i].name)
		}
		st := step{predKey: seg.predKey, predVal: seg.predVal}
		var fs []*field
		if f := t.fields[seg.name]; f != nil {
			st.keys, fs = []string{seg.name}, []*field{f}
		} else if keys := t.choices[seg.name]; len(keys) > 0 {
			st.keys = keys
			for _, k := range keys {
				fs = append(fs, t.fields[k])
			}
		} else {
			return nil, fmt.Errorf("%s has no element %q in FHIR R4", pathPrefix(segs, i+1), seg.name)
		}
		last = fs[0]
		var next *typeInfo
		for _, f := range fs {
			if f.kind == kindResource && i+2 < len(segs) {
				return nil, fmt.Errorf("%q holds a nested resource: write rules for that resource type instead", seg.name)
			}
			if f.kind == kindComplex {
				next = f.typ
			}
			if !f.stringLike {
				last = f
			}
		}
		if len(fs) > 1 {
			next = nil // a path cannot continue past a choice element
			if i+2 < len(segs) {
				return nil, fmt.Errorf("%q is a choice element: name one of %s to go deeper", seg.name, strings.Join(st.keys, ", "))
			}
		}
		if st.predKey != "" {
			if next == nil {
				return nil, fmt.Errorf("where() needs an element with children, %q has none", seg.name)
			}
			pf := next.fields[st.predKey]
			if pf == nil || pf.kind != kindPrimitive {
				return nil, fmt.Errorf("where(%s=...): %q is not a primitive element of %s", st.predKey, st.predKey, seg.name)
			}
		}
		r.steps = append(r.steps, st)
		t = next
	}
	if act != actRemove {
		if last == nil || last.kind != kindPrimitive || !last.stringLike {
			return nil, fmt.Errorf("action %s needs a primitive string element (e.g. %s.value), not a complex or non-string one", spec.Action, r.path)
		}
	}
	switch act {
	case actRedact:
		rep := spec.Replacement
		if rep == "" {
			rep = "REDACTED"
		}
		r.replacement = appendJSONString(nil, rep)
	case actHash:
		if len(hashKey) < 16 {
			return nil, errors.New("action hash needs Options.HashKey of at least 16 bytes")
		}
	}
	if spec.Replacement != "" && act != actRedact {
		return nil, errors.New("replacement is only meaningful with action redact")
	}
	return r, nil
}

func pathPrefix(segs []segment, n int) string {
	names := make([]string, n)
	for i := range n {
		names[i] = segs[i].name
	}
	return strings.Join(names, ".")
}

type segment struct {
	name, predKey, predVal string
}

// splitPath parses "A.b.where(system='x').c" into segments, attaching each
// where() to the segment before it.
func splitPath(p string) ([]segment, error) {
	if p == "" {
		return nil, errors.New("empty path")
	}
	var segs []segment
	for p != "" {
		if strings.HasPrefix(p, "where(") {
			if len(segs) == 0 || segs[len(segs)-1].predKey != "" {
				return nil, errors.New("where() must follow an element name, once")
			}
			k, v, rest, err := parseWhere(p[len("where("):])
			if err != nil {
				return nil, err
			}
			segs[len(segs)-1].predKey, segs[len(segs)-1].predVal = k, v
			p = rest
		} else {
			end := strings.IndexByte(p, '.')
			name := p
			if end >= 0 {
				name, p = p[:end], p[end:]
			} else {
				p = ""
			}
			if !isIdent(name) {
				return nil, fmt.Errorf("%q is not an element name", name)
			}
			segs = append(segs, segment{name: name})
		}
		if p == "" {
			break
		}
		if p[0] != '.' || len(p) == 1 {
			return nil, fmt.Errorf("unexpected %q", p)
		}
		p = p[1:]
	}
	return segs, nil
}

// parseWhere parses "key='value')" and returns the rest after ')'.
func parseWhere(s string) (key, val, rest string, err error) {
	eq := strings.IndexByte(s, '=')
	if eq < 0 {
		return "", "", "", errors.New("where() supports only element='literal'")
	}
	key = strings.TrimSpace(s[:eq])
	if !isIdent(key) {
		return "", "", "", fmt.Errorf("where(): %q is not an element name", key)
	}
	s = strings.TrimLeft(s[eq+1:], " ")
	if s == "" || s[0] != '\'' {
		return "", "", "", errors.New("where(): the value must be a 'quoted' literal")
	}
	var b strings.Builder
	i := 1
	for ; i < len(s) && s[i] != '\''; i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	if i >= len(s) {
		return "", "", "", errors.New("where(): unterminated literal")
	}
	s = strings.TrimLeft(s[i+1:], " ")
	if s == "" || s[0] != ')' {
		return "", "", "", errors.New("where(): missing ')'")
	}
	return key, b.String(), s[1:], nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
