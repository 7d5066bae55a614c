package fhir

import (
	"net/url"
	"strings"
)

// SearchParam is one name=value pair of a search (or of conditional
// criteria, history or operation parameters). A name repeated in the query
// gives several SearchParams (the values AND); commas inside one value give
// several Values (they OR).
type SearchParam struct {
	// Key is the decoded parameter name as sent, with modifier and chain
	// ("subject:Patient.name").
	Key string
	// Name is the parameter name without modifier or chain ("subject").
	Name string
	// Modifier is the text after the first ":" of the name, up to a chain:
	// "missing", "exact", "iterate", or a resource type ("Patient") that
	// types a reference or a chain.
	Modifier string
	// Chain holds the links after the first "." for a chained parameter,
	// e.g. "subject:Patient.organization:Organization.name" has the links
	// {organization Organization} and {name ""}. The last link is the
	// parameter evaluated at the end; its Modifier is a search modifier.
	Chain []ChainLink
	// Value is the decoded value; Values is it split at unescaped commas.
	Value  string
	Values []string
}

// ChainLink is one link of a chained parameter.
type ChainLink struct {
	Param    string
	Modifier string
}

// ChainTypes returns the resource types a chained parameter traverses, in
// order, and whether every one of them is known. A link without a type
// modifier ("subject.name") can reach any type its reference parameter
// targets, which classification cannot know; callers must then assume the
// worst.
func (p SearchParam) ChainTypes() (types []string, complete bool) {
	if len(p.Chain) == 0 {
		return nil, true
	}
	complete = true
	hop := func(mod string) {
		if IsResourceType(mod) {
			types = append(types, mod)
		} else {
			complete = false
		}
	}
	hop(p.Modifier)
	for _, l := range p.Chain[:len(p.Chain)-1] {
		hop(l.Modifier)
	}
	return types, complete
}

// singleValued are the result parameters a server may read only once; a
// repeated one is refused because fhirwall and the upstream could pick
// different occurrences.
var singleValued = map[string]bool{
	"_summary": true, "_elements": true, "_contained": true, "_containedType": true,
	"_format": true, "_count": true, "_total": true, "_sort": true, "_pretty": true,
}

// controlNames are the "_" parameters with a special meaning. A name that
// matches one of them only when case is ignored ("_INCLUDE") is refused: a
// lenient upstream could honour it while fhirwall ignored it.
var controlNames = []string{
	"_include", "_revinclude", "_has", "_type", "_contained", "_containedType",
	"_summary", "_elements", "_format", "_count", "_total", "_sort", "_id",
	"_lastUpdated", "_tag", "_profile", "_security", "_text", "_content",
	"_list", "_query", "_filter", "_source", "_since", "_at", "_pretty",
}

// parseQuery parses an application/x-www-form-urlencoded string (a URL
// query or a form body) into params, appending to dst in order. It refuses
// ";" separators (servers disagree whether ";" separates parameters), bad
// escapes, and names or values with control characters.
func parseQuery(dst []SearchParam, raw string) ([]SearchParam, error) {
	if raw == "" {
		return dst, nil
	}
	if strings.IndexByte(raw, ';') >= 0 {
		return dst, Errorf(ReasonRequestInvalid, "';' in the query is ambiguous; encode it as %%3B")
	}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return dst, Wrap(ReasonRequestInvalid, err, "a parameter name is badly escaped")
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return dst, Wrap(ReasonRequestInvalid, err, "a parameter value is badly escaped")
		}
		if hasControl(key) || hasControl(val) {
			return dst, Errorf(ReasonRequestInvalid, "control characters are not allowed in parameters")
		}
		p, err := newSearchParam(key, val)
		if err != nil {
			return dst, err
		}
		dst = append(dst, p)
	}
	return dst, nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// newSearchParam splits key into name, modifier and chain.
func newSearchParam(key, val string) (SearchParam, error) {
	if key == "" {
		return SearchParam{}, Errorf(ReasonRequestInvalid, "a parameter has no name")
	}
	p := SearchParam{Key: key, Value: val, Values: splitOr(val)}
	if strings.HasPrefix(key, "_has:") {
		p.Name = "_has"
		return p, nil
	}
	head, chain, chained := strings.Cut(key, ".")
	p.Name, p.Modifier, _ = strings.Cut(head, ":")
	if p.Name == "" {
		return p, Errorf(ReasonRequestInvalid, "a parameter has no name")
	}
	for _, c := range controlNames {
		if p.Name != c && strings.EqualFold(p.Name, c) {
			return p, Errorf(ReasonRequestInvalid, "parameter %s differs from %s only in case", safeToken(p.Name), c)
		}
	}
	if chained {
		if strings.HasPrefix(p.Name, "_") {
			return p, Errorf(ReasonRequestInvalid, "parameter %s cannot be chained", safeToken(p.Name))
		}
		for link := range strings.SplitSeq(chain, ".") {
			param, mod, _ := strings.Cut(link, ":")
			if param == "" {
				return p, Errorf(ReasonRequestInvalid, "chained parameter %s has an empty link", safeToken(key))
			}
			p.Chain = append(p.Chain, ChainLink{Param: param, Modifier: mod})
		}
	}
	return p, nil
}

// splitOr splits a value at commas not escaped with a backslash (FHIR
// search escaping); the escapes are kept in the parts.
func splitOr(v string) []string {
	if strings.IndexByte(v, ',') < 0 {
		return []string{v}
	}
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case ',':
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// collectPullIns fills r.PullIns and r.Format from r.Params and refuses
// malformed or ambiguous join parameters.
func collectPullIns(r *Request) error {
	seen := map[string]bool{}
	pi := &r.PullIns
	for i := range r.Params {
		p := &r.Params[i]
		if singleValued[p.Name] {
			if seen[p.Name] {
				return Errorf(ReasonRequestInvalid, "parameter %s may appear only once", p.Name)
			}
			seen[p.Name] = true
		}
		switch p.Name {
		case "_include", "_revinclude":
			inc, err := parseInclude(p)
			if err != nil {
				return err
			}
			if p.Name == "_include" {
				pi.Include = append(pi.Include, inc)
			} else {
				pi.RevInclude = append(pi.RevInclude, inc)
			}
		case "_has":
			h, err := parseHas(p)
			if err != nil {
				return err
			}
			pi.Has = append(pi.Has, h)
		case "_type":
			for _, t := range p.Values {
				if !IsResourceType(t) {
					return Errorf(ReasonRequestInvalid, "_type names %s, which is not an R4 resource type", safeToken(t))
				}
				pi.Types = append(pi.Types, t)
			}
		case "_contained":
			pi.Contained = p.Value
		case "_containedType":
			pi.ContainedType = p.Value
		case "_summary":
			pi.Summary = p.Value
		case "_elements":
			pi.Elements = append(pi.Elements, p.Values...)
		case "_total":
			pi.Total = p.Value
		case "_method":
			return Errorf(ReasonRequestInvalid, "method override parameters are not accepted")
		case "_format":
			r.Format = p.Value
		case "_filter":
			pi.Filter = append(pi.Filter, p.Value)
		case "_list":
			pi.List = append(pi.List, p.Value)
		case "_query":
			pi.Query = append(pi.Query, p.Value)
		default:
			if len(p.Chain) > 0 {
				pi.Chained = append(pi.Chained, *p)
			}
		}
	}
	return nil
}

func parseInclude(p *SearchParam) (Include, error) {
	var inc Include
	switch p.Modifier {
	case "":
	case "iterate", "recurse":
		inc.Iterate = true
	default:
		return inc, Errorf(ReasonRequestInvalid, "%s:%s is not a known modifier", p.Name, safeToken(p.Modifier))
	}
	if strings.ContainsAny(p.Value, ",") {
		return inc, Errorf(ReasonRequestInvalid, "%s takes one value per parameter", p.Name)
	}
	if p.Value == "*" {
		inc.Wildcard = true
		return inc, nil
	}
	parts := strings.Split(p.Value, ":")
	if len(parts) < 2 || len(parts) > 3 || !IsResourceType(parts[0]) || parts[1] == "" {
		return inc, Errorf(ReasonRequestInvalid, "%s=%s is not Type:param[:Target]", p.Name, safeToken(p.Value))
	}
	inc.Source, inc.Param = parts[0], parts[1]
	if inc.Param == "*" {
		inc.Wildcard = true
	}
	if len(parts) == 3 {
		if !IsResourceType(parts[2]) {
			return inc, Errorf(ReasonRequestInvalid, "%s target %s is not an R4 resource type", p.Name, safeToken(parts[2]))
		}
		inc.Target = parts[2]
	}
	return inc, nil
}

func parseHas(p *SearchParam) (Has, error) {
	h := Has{Values: p.Values}
	rest := p.Key
	for strings.HasPrefix(rest, "_has:") {
		parts := strings.SplitN(rest[len("_has:"):], ":", 3)
		if len(parts) < 3 || !IsResourceType(parts[0]) || parts[1] == "" || parts[2] == "" {
			return h, Errorf(ReasonRequestInvalid, "_has must be _has:Type:reference:parameter")
		}
		h.Hops = append(h.Hops, HasHop{Type: parts[0], Ref: parts[1]})
		rest = parts[2]
	}
	h.Param = rest
	target, err := newSearchParam(rest, p.Value)
	if err != nil {
		return h, err
	}
	if target.Name == "_has" {
		return h, Errorf(ReasonRequestInvalid, "_has must be _has:Type:reference:parameter")
	}
	h.Target = target
	return h, nil
}

// Param returns the first parameter named name and whether there is one.
func (r *Request) Param(name string) (SearchParam, bool) {
	for _, p := range r.Params {
		if p.Name == name {
			return p, true
		}
	}
	return SearchParam{}, false
}
