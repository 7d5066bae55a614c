package fhirsample

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

const (
	defaultCount = 10
	maxCount     = 500
	// offsetParam carries the page offset in paging links, in the manner
	// of HAPI's _getpagesoffset. Paging is by offset over the live data: a
	// write between two page requests can shift results across pages.
	offsetParam = "_getpagesoffset"
	maxOffset   = 1 << 30 // keeps offset+count from overflowing
)

// filter is one search parameter occurrence: its values are ORed, and
// filters are ANDed.
type filter struct {
	p        searchParam
	modifier string
	values   []string
}

// include is one _include or _revinclude value, Source:param[:Target].
type include struct {
	source, param, target string
	iterate, rev          bool
}

// searchSpec is a parsed search request.
type searchSpec struct {
	filters      []filter
	count        int
	offset       int
	summaryCount bool
	includes     []include
	echo         url.Values // the parameters applied, repeated in links
}

// ignoredAlways are result parameters the server accepts and does not
// apply even in strict mode, because they do not change which resources
// are returned.
var ignoredAlways = map[string]bool{"_format": true, "_pretty": true}

// parseSearch reads the search parameters of a search on typ. Unknown
// parameters are ignored unless strict; a known parameter with a value or
// modifier the server cannot apply is an error either way.
func parseSearch(typ string, q url.Values, strict bool) (*searchSpec, *failure) {
	spec := &searchSpec{count: defaultCount, echo: url.Values{}}
	for _, key := range slices.Sorted(maps.Keys(q)) {
		vals := q[key]
		name, modifier, _ := strings.Cut(key, ":")
		last := vals[len(vals)-1]
		switch name {
		case "_count", offsetParam:
			n, err := strconv.Atoi(last)
			if err != nil || n < 0 {
				return nil, badRequest("%s must be a non-negative integer, not %q", name, last)
			}
			if name == "_count" {
				spec.count = min(n, maxCount)
			} else {
				spec.offset = min(n, maxOffset)
			}
			continue
		case "_summary":
			switch last {
			case "count":
				spec.summaryCount = true
				spec.echo.Set(key, last)
			case "true", "false", "text", "data":
				if strict {
					return nil, badRequest("_summary=%s is not supported", last)
				}
			default:
				return nil, badRequest("_summary=%q is not a valid value", last)
			}
			continue
		case "_include", "_revinclude":
			if modifier != "" && modifier != "iterate" {
				return nil, badRequest("%s:%s is not supported", name, modifier)
			}
			for _, val := range vals {
				inc, f := parseInclude(typ, val, name == "_revinclude", modifier == "iterate")
				if f != nil {
					return nil, f
				}
				spec.includes = append(spec.includes, inc)
			}
			spec.echo[key] = vals
			continue
		}
		if ignoredAlways[name] {
			continue
		}
		p, ok := lookupParam(typ, name)
		if !ok {
			if strict {
				return nil, badRequest("search parameter %q is not supported for %s", key, typ)
			}
			continue
		}
		if f := checkModifier(p, modifier); f != nil {
			return nil, f
		}
		for _, val := range vals {
			fl := filter{p: p, modifier: modifier, values: strings.Split(val, ",")}
			if p.typ == ptDate {
				for _, dv := range fl.values {
					if _, _, _, ok := dateValue(dv); !ok {
						return nil, badRequest("%q is not a valid date search value for %s", dv, name)
					}
				}
			}
			spec.filters = append(spec.filters, fl)
		}
		spec.echo[key] = vals
	}
	return spec, nil
}

func checkModifier(p searchParam, modifier string) *failure {
	ok := modifier == ""
	switch p.typ {
	case ptString:
		ok = ok || modifier == "exact" || modifier == "contains"
	case ptReference:
		ok = ok || fhir.IsResourceType(modifier)
	}
	if !ok {
		return badRequest("modifier :%s is not supported on a %s parameter", modifier, p.typ)
	}
	return nil
}

func parseInclude(typ, val string, rev, iterate bool) (include, *failure) {
	parts := strings.Split(val, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return include{}, badRequest("%q is not Type:parameter[:TargetType]", val)
	}
	inc := include{source: parts[0], param: parts[1], iterate: iterate, rev: rev}
	if len(parts) == 3 {
		inc.target = parts[2]
		if !isType(inc.target) {
			return include{}, badRequest("unknown target type in %q", val)
		}
	}
	p, ok := lookupParam(inc.source, inc.param)
	if !isType(inc.source) || !ok || p.typ != ptReference {
		return include{}, badRequest("%q names no reference search parameter", val)
	}
	if !rev && !iterate && inc.source != typ {
		return include{}, badRequest("_include=%s does not start from %s", val, typ)
	}
	return inc, nil
}

// dateValue splits a date search value into its prefix and range.
func dateValue(s string) (prefix string, lo, hi time.Time, ok bool) {
	prefix = "eq"
	if len(s) > 2 && s[0] >= 'a' && s[0] <= 'z' {
		prefix, s = s[:2], s[2:]
		switch prefix {
		case "eq", "ne", "gt", "lt", "ge", "le":
		default:
			return "", lo, hi, false
		}
	}
	lo, hi, ok = dateRange(s)
	return prefix, lo, hi, ok
}

// matches reports whether res satisfies every filter.
func (spec *searchSpec) matches(res map[string]any, base string) bool {
	for _, f := range spec.filters {
		if !f.matches(res, base) {
			return false
		}
	}
	return true
}

func (f filter) matches(res map[string]any, base string) bool {
	var elems []any
	for _, path := range f.p.paths {
		elems = append(elems, elements(res, path)...)
	}
	for _, val := range f.values {
		for _, e := range elems {
			if f.matchOne(e, val, base) {
				return true
			}
		}
	}
	return false
}

func (f filter) matchOne(e any, val, base string) bool {
	switch f.p.typ {
	case ptToken:
		for _, t := range tokens(e) {
			if matchToken(t, val) {
				return true
			}
		}
	case ptString:
		for _, s := range stringsIn(e, nil) {
			if matchString(s, val, f.modifier) {
				return true
			}
		}
	case ptReference:
		if ref := referenceOf(e, base); ref != "" {
			return matchReference(ref, val, f.modifier, f.p.target)
		}
	case ptDate:
		lo, hi, ok := valueRange(e)
		prefix, plo, phi, pok := dateValue(val)
		return ok && pok && matchDate(lo, hi, prefix, plo, phi)
	}
	return false
}

// hit is one resource in a result set.
type hit struct {
	typ, id string
	ver     *version
}

func (h hit) key() string { return h.typ + "/" + h.id }

// search answers search-type, and compartment search when patient is set
// (GET /Patient/{patient}/{typ}).
func (v view) search(typ string, req request, patient string) response {
	spec, f := parseSearch(typ, req.query, !lenient(req.header))
	if f != nil {
		return f.response()
	}
	path := typ
	if patient != "" {
		param, ok := patientCompartment[typ]
		if !ok {
			return badRequest("%s is not in the Patient compartment", typ).response()
		}
		p, _ := lookupParam(typ, param)
		spec.filters = append(spec.filters, filter{p: p, values: []string{"Patient/" + patient}})
		path = "Patient/" + url.PathEscape(patient) + "/" + typ
	}
	var matches []hit
	v.d.live(typ, func(id string, ver *version) bool {
		if spec.matches(ver.res, v.base) {
			matches = append(matches, hit{typ, id, ver})
		}
		return true
	})
	total := len(matches)
	b := v.newBundle("searchset")
	b.Total = &total
	b.Link = v.pageLinks(path, spec, total)
	if !spec.summaryCount && spec.count > 0 {
		page := matches[min(spec.offset, total):min(spec.offset+spec.count, total)]
		for _, h := range page {
			b.Entry = append(b.Entry, v.entryFor(h.typ, h.id, h.ver, "match"))
		}
		for _, h := range v.included(page, spec.includes) {
			b.Entry = append(b.Entry, v.entryFor(h.typ, h.id, h.ver, "include"))
		}
	}
	return v.bundleResponse(b)
}

// pageLinks builds self, first, previous, next and last links with
// absolute URLs that repeat the applied parameters.
func (v view) pageLinks(path string, spec *searchSpec, total int) []bundleLink {
	link := func(rel string, offset int) bundleLink {
		q := url.Values{}
		for k, vs := range spec.echo {
			q[k] = vs
		}
		q.Set("_count", strconv.Itoa(spec.count))
		if offset > 0 {
			q.Set(offsetParam, strconv.Itoa(offset))
		}
		return bundleLink{Relation: rel, URL: v.base + "/" + path + "?" + q.Encode()}
	}
	links := []bundleLink{link("self", spec.offset)}
	if spec.summaryCount || spec.count == 0 {
		return links
	}
	links = append(links, link("first", 0))
	if spec.offset > 0 {
		links = append(links, link("previous", max(0, min(spec.offset, total)-spec.count)))
	}
	if spec.offset+spec.count < total {
		links = append(links, link("next", spec.offset+spec.count))
	}
	if total > 0 {
		links = append(links, link("last", (total-1)/spec.count*spec.count))
	}
	return links
}

// included resolves _include and _revinclude for the matches of one page.
// :iterate specs are applied again to what the previous round added, a
// bounded number of times.
func (v view) included(page []hit, incs []include) []hit {
	if len(incs) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, h := range page {
		seen[h.key()] = true
	}
	var added []hit
	add := func(h hit, next *[]hit) {
		if !seen[h.key()] {
			seen[h.key()] = true
			*next = append(*next, h)
		}
	}
	src := page
	for round := 0; round < 4 && len(src) > 0; round++ {
		var next []hit
		for _, inc := range incs {
			if round > 0 && !inc.iterate {
				continue
			}
			p, _ := lookupParam(inc.source, inc.param)
			if !inc.rev {
				for _, h := range src {
					if h.typ != inc.source {
						continue
					}
					for _, ref := range v.refsAt(h.ver.res, p) {
						rt, rid, _ := strings.Cut(ref, "/")
						if inc.target != "" && rt != inc.target {
							continue
						}
						if ver := v.d.latest(rt, rid); ver != nil && !ver.deleted {
							add(hit{rt, rid, ver}, &next)
						}
					}
				}
				continue
			}
			targets := map[string]bool{}
			for _, h := range src {
				if inc.target == "" || h.typ == inc.target {
					targets[h.key()] = true
				}
			}
			v.d.live(inc.source, func(id string, ver *version) bool {
				for _, ref := range v.refsAt(ver.res, p) {
					if targets[ref] {
						add(hit{inc.source, id, ver}, &next)
						break
					}
				}
				return true
			})
		}
		added = append(added, next...)
		src = next
	}
	return added
}

// refsAt returns the "Type/id" references at a reference parameter's paths.
func (v view) refsAt(res map[string]any, p searchParam) []string {
	var out []string
	for _, path := range p.paths {
		for _, e := range elements(res, path) {
			if ref := referenceOf(e, v.base); ref != "" && isType(strings.SplitN(ref, "/", 2)[0]) {
				out = append(out, ref)
			}
		}
	}
	return out
}

// everything answers Patient/{id}/$everything: the Patient, every
// resource in its compartment, and the Practitioners and Organizations
// they reference. It is not paged.
func (v view) everything(id string) response {
	pat := v.d.latest("Patient", id)
	switch {
	case pat == nil:
		return notFound("Patient/%s is not known", id).response()
	case pat.deleted:
		return fail(http.StatusGone, "deleted", "Patient/%s has been deleted", id).response()
	}
	hits := []hit{{"Patient", id, pat}}
	seen := map[string]bool{"Patient/" + id: true}
	for _, typ := range resourceTypes {
		param, ok := patientCompartment[typ]
		if !ok {
			continue
		}
		p, _ := lookupParam(typ, param)
		f := filter{p: p, values: []string{"Patient/" + id}}
		v.d.live(typ, func(rid string, ver *version) bool {
			if f.matches(ver.res, v.base) {
				hits = append(hits, hit{typ, rid, ver})
				seen[typ+"/"+rid] = true
			}
			return true
		})
	}
	var refs []hit
	for _, h := range hits {
		for _, ref := range allRefs(h.ver.res, nil) {
			rt, rid, _ := strings.Cut(strings.TrimPrefix(ref, v.base+"/"), "/")
			if (rt != "Practitioner" && rt != "Organization") || seen[rt+"/"+rid] {
				continue
			}
			if ver := v.d.latest(rt, rid); ver != nil && !ver.deleted {
				seen[rt+"/"+rid] = true
				refs = append(refs, hit{rt, rid, ver})
			}
		}
	}
	slices.SortFunc(refs, func(a, b hit) int { return strings.Compare(a.key(), b.key()) })
	b := v.newBundle("searchset")
	total := len(hits) + len(refs)
	b.Total = &total
	b.Link = []bundleLink{{Relation: "self", URL: v.base + "/Patient/" + id + "/$everything"}}
	for _, h := range hits {
		b.Entry = append(b.Entry, v.entryFor(h.typ, h.id, h.ver, "match"))
	}
	for _, h := range refs {
		b.Entry = append(b.Entry, v.entryFor(h.typ, h.id, h.ver, "include"))
	}
	return v.bundleResponse(b)
}

// allRefs collects every Reference.reference string in a resource.
func allRefs(node any, out []string) []string {
	switch n := node.(type) {
	case map[string]any:
		for k, val := range n {
			if s, ok := val.(string); ok && k == "reference" {
				out = append(out, s)
				continue
			}
			out = allRefs(val, out)
		}
	case []any:
		for _, val := range n {
			out = allRefs(val, out)
		}
	}
	return out
}
