package masking

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Defaults for Options.
const (
	DefaultMaxResourceBytes = 16 << 20
	DefaultMaxDepth         = 64
	maxResourceBytes        = 1 << 30
)

// Options bound and configure every Rewriter of a Set.
type Options struct {
	// MaxResourceBytes caps one resource held in memory: a top-level
	// resource, one Bundle entry, one envelope member, one NDJSON line. A
	// larger one makes the rewrite fail; it is never passed through.
	// Zero means DefaultMaxResourceBytes; values over 1 GiB are taken as
	// 1 GiB.
	MaxResourceBytes int64
	// MaxDepth caps the nesting of objects and arrays in the whole body.
	// Zero means DefaultMaxDepth; values over 1000 are taken as 1000 (the
	// validator recurses once per level).
	MaxDepth int
	// HashKey is the HMAC-SHA256 key of the hash action (at least 16 bytes
	// when any rule hashes). The Set keeps its own copy.
	HashKey []byte
	// UpstreamBase and PublicBase, when both set, turn on link rewriting: a
	// Bundle.link.url, Bundle.entry.fullUrl or Bundle.entry.response.location
	// (at any Bundle nesting level) that equals UpstreamBase or starts with
	// UpstreamBase followed by '/', '?' or '#' gets that prefix replaced by
	// PublicBase. A trailing '/' on either is ignored.
	UpstreamBase, PublicBase string
}

// Set is a compiled, immutable collection of mask profiles. It is safe for
// concurrent use; a config reload compiles a new Set.
type Set struct {
	opts     Options
	profiles map[string][]*rule
	plans    sync.Map // profile-list key -> *plan
	// pubJSON is PublicBase as the start of a JSON string: the opening
	// quote and the escaped base, no closing quote.
	pubJSON []byte
}

// Compile validates every rule of every profile against the FHIR R4
// definitions and returns the compiled Set. When any rule is bad, it returns
// a nil Set and an error joining one *RuleError per bad rule (see
// RuleErrors), so every problem is reported at once.
func Compile(profiles map[string][]RuleSpec, opts Options) (*Set, error) {
	var errs []error
	if opts.MaxResourceBytes <= 0 {
		opts.MaxResourceBytes = DefaultMaxResourceBytes
	}
	if opts.MaxResourceBytes > maxResourceBytes {
		opts.MaxResourceBytes = maxResourceBytes // offsets inside a resource are int32
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	opts.MaxDepth = min(opts.MaxDepth, 1000)
	opts.HashKey = slices.Clone(opts.HashKey)
	up, pub, err := normalizeBases(opts.UpstreamBase, opts.PublicBase)
	if err != nil {
		errs = append(errs, err)
	}
	opts.UpstreamBase, opts.PublicBase = up, pub
	s := &Set{opts: opts, profiles: map[string][]*rule{}}
	if pub != "" {
		s.pubJSON = appendJSONString(nil, pub)
		s.pubJSON = s.pubJSON[:len(s.pubJSON)-1]
	}
	names := make([]string, 0, len(profiles))
	for name := range profiles {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" {
			errs = append(errs, errors.New("mask profile with an empty name"))
			continue
		}
		for i, spec := range profiles[name] {
			r, err := compileRule(name, spec, opts.HashKey)
			if err != nil {
				errs = append(errs, &RuleError{Profile: name, Index: i, Path: spec.Path, Err: err})
				continue
			}
			s.profiles[name] = append(s.profiles[name], r)
		}
		if _, ok := s.profiles[name]; !ok {
			s.profiles[name] = nil // a profile with no rules is legal and masks nothing
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func normalizeBases(up, pub string) (string, string, error) {
	if up == "" && pub == "" {
		return "", "", nil
	}
	if up == "" || pub == "" {
		return "", "", errors.New("link rewriting needs both UpstreamBase and PublicBase")
	}
	for _, b := range []string{up, pub} {
		u, err := url.Parse(b)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", "", fmt.Errorf("link rewriting: %q is not an absolute http(s) URL", b)
		}
	}
	return strings.TrimRight(up, "/"), strings.TrimRight(pub, "/"), nil
}

// Profiles lists the Set's profile names, sorted.
func (s *Set) Profiles() []string {
	out := make([]string, 0, len(s.profiles))
	for n := range s.profiles {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Rewriter returns a Rewriter applying the named profiles (duplicates are
// ignored; none at all still validates, checks and rewrites links) and
// consulting check for every resource (nil keeps everything). An unknown
// profile name is an error. A Rewriter is cheap; make one per response.
func (s *Set) Rewriter(profiles []string, check Check) (*Rewriter, error) {
	names := slices.Clone(profiles)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if _, ok := s.profiles[n]; !ok {
			return nil, fmt.Errorf("masking: unknown mask profile %q", n)
		}
	}
	key := strings.Join(names, "\x00")
	p, ok := s.plans.Load(key)
	if !ok {
		p, _ = s.plans.LoadOrStore(key, s.buildPlan(names))
	}
	return &Rewriter{set: s, plan: p.(*plan), check: check}, nil
}

// plan is the rules of one profile combination, indexed for the walker.
type plan struct {
	rules []*rule
	// anchors[type id] lists the rules anchored at that type.
	anchors [][]int32
	// relevant[type id]: a value of this type may need rewriting even with
	// no rule path running through it (a type-wide rule can be reached, or
	// a nested resource, or a link to rewrite).
	relevant []bool
	// quiet[type id]: a resource type no rule touches and with nothing
	// relevant below it but possibly contained resources.
	quiet []bool
	// rootHot[field id]: at the top level of a resource, this element needs
	// looking at (a rule starts with it, or needsWalk). Other top-level
	// members are copied without consulting the cursors.
	rootHot []bool
	labels  []string
}

func (s *Set) buildPlan(names []string) *plan {
	sc := schema()
	p := &plan{anchors: make([][]int32, len(sc.types)), relevant: make([]bool, len(sc.types))}
	for _, n := range names {
		for _, r := range s.profiles[n] {
			id := int32(len(p.rules))
			p.rules = append(p.rules, r)
			p.labels = append(p.labels, r.label())
			p.anchors[r.anchor.id] = append(p.anchors[r.anchor.id], id)
		}
	}
	links := s.opts.UpstreamBase != ""
	for _, t := range sc.types {
		if t.dataType && len(p.anchors[t.id]) > 0 {
			p.relevant[t.id] = true
		}
		for _, f := range t.fields {
			if f.kind == kindResource || links && f.urlRewrite {
				p.relevant[t.id] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, t := range sc.types {
			if p.relevant[t.id] {
				continue
			}
			for _, f := range t.fields {
				if f.kind == kindComplex && p.relevant[f.typ.id] {
					p.relevant[t.id], changed = true, true
					break
				}
			}
		}
	}
	p.rootHot = make([]bool, len(sc.fields))
	for _, f := range sc.fields {
		p.rootHot[f.id] = f.kind == kindResource || f.kind == kindComplex && p.relevant[f.typ.id] || links && f.urlRewrite
	}
	for _, r := range p.rules {
		if r.typeWide {
			continue
		}
		for _, k := range r.steps[0].keys {
			p.rootHot[r.anchor.fields[k].id] = true
		}
	}
	p.quiet = make([]bool, len(sc.types))
	for _, t := range sc.types {
		if !t.resource || len(p.anchors[t.id]) > 0 {
			continue
		}
		quiet := true
		for key, f := range t.fields {
			switch {
			case key == "contained":
			case f.kind == kindResource, f.kind == kindComplex && p.relevant[f.typ.id], links && f.urlRewrite:
				quiet = false
			}
		}
		p.quiet[t.id] = quiet
	}
	return p
}
