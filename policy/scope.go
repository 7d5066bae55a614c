package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/fhirwall/fhirwall/fhir"
)

// ScopeContext is the first part of a SMART scope: whose data it reaches.
type ScopeContext string

// The three SMART contexts.
const (
	ContextPatient ScopeContext = "patient"
	ContextUser    ScopeContext = "user"
	ContextSystem  ScopeContext = "system"
)

// Perm is a set of SMART v2 permission letters (c r u d s).
type Perm uint8

// The SMART v2 permissions, in scope-letter order.
const (
	PermCreate Perm = 1 << iota
	PermRead
	PermUpdate
	PermDelete
	PermSearch

	permAll = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
)

const permLetters = "cruds"

// String is the v2 letter form, e.g. "rs".
func (p Perm) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// PermOf returns the permission for one letter of "cruds", or 0.
func PermOf(letter byte) Perm {
	if i := strings.IndexByte(permLetters, letter); i >= 0 {
		return 1 << i
	}
	return 0
}

// Scope is one parsed SMART App Launch scope. The zero Scope (Context "")
// is a recognised non-SMART scope such as "openid", which grants nothing.
type Scope struct {
	Context ScopeContext
	// ResourceType is an R4 resource type or "*" for every type.
	ResourceType string
	Perms        Perm
	// Query is the granular restriction of a v2 scope: every parameter must
	// match (AND); within one parameter any value may match (OR). Empty for
	// an unrestricted scope.
	Query []ScopeParam
	// Raw is the scope as written.
	Raw string

	// canon caches String() for scopes built by this package, which the
	// hot path names in every Decision.
	canon string
}

// ScopeParam is one parameter of a granular scope's query.
type ScopeParam struct {
	// Name is one of GranularParams.
	Name string
	// Values are the alternatives: "system|code", "|code" (no system),
	// "code" (any system) or "system|" (any code of the system); for
	// status, a plain code.
	Values []string
}

// GranularParams are the search parameters a granular scope may use: the
// ones the gateway can both add to a search and evaluate on a returned
// resource. Any other parameter makes the scope invalid, because a
// restriction the gateway cannot enforce would silently widen access.
var GranularParams = []string{"category", "code", "_tag", "_security", "status"}

// ErrScope is wrapped by every ParseScope error.
var ErrScope = errors.New("invalid SMART scope")

// nonSMART are the OpenID Connect and SMART launch scopes that grant no
// access to resources; they are recognised and ignored.
var nonSMART = map[string]bool{
	"openid": true, "fhirUser": true, "profile": true, "email": true,
	"offline_access": true, "online_access": true,
	"launch": true, "launch/patient": true, "launch/encounter": true,
}

// ParseScope parses one SMART scope, v1 ("patient/Observation.read",
// ".write", ".*") or v2 ("system/Claim.rs", letters of "cruds" in that order,
// optionally with a granular query of GranularParams). Recognised non-SMART
// scopes (openid, fhirUser, launch/patient, offline_access, ...) return the
// zero Scope with Raw set and no error. Anything else — unknown context or
// resource type (case matters), letters out of order, repeated or unknown,
// an empty or unsupported query — is an error wrapping ErrScope: a scope is
// never read more widely than written.
func ParseScope(s string) (Scope, error) {
	if nonSMART[s] || strings.HasPrefix(s, "launch/") && validLaunchContext(s[len("launch/"):]) {
		return Scope{Raw: s}, nil
	}
	fail := func(format string, args ...any) (Scope, error) {
		return Scope{}, fmt.Errorf("%w %q: %s", ErrScope, s, fmt.Sprintf(format, args...))
	}
	sc := Scope{Raw: s}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return fail("expected context/Type.permissions")
	}
	switch ScopeContext(ctx) {
	case ContextPatient, ContextUser, ContextSystem:
		sc.Context = ScopeContext(ctx)
	default:
		return fail("context must be patient, user or system")
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return fail("expected Type.permissions")
	}
	if typ != "*" && !fhir.IsResourceType(typ) {
		return fail("%q is not an R4 resource type (names are case-sensitive)", typ)
	}
	sc.ResourceType = typ
	v2 := false
	switch perms {
	case "read":
		sc.Perms = PermRead | PermSearch
	case "write":
		sc.Perms = PermCreate | PermUpdate | PermDelete
	case "*":
		sc.Perms = permAll
	default:
		p, err := parseLetters(perms)
		if err != nil {
			return fail("%v", err)
		}
		sc.Perms, v2 = p, true
	}
	if hasQuery {
		if !v2 {
			return fail("granular queries need v2 permissions (.rs, .cruds, ...)")
		}
		q, err := parseScopeQuery(query)
		if err != nil {
			return fail("%v", err)
		}
		sc.Query = q
	}
	sc.canon = sc.String()
	return sc, nil
}

func validLaunchContext(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// parseLetters reads v2 permission letters, which must be a non-empty
// subsequence of "cruds".
func parseLetters(s string) (Perm, error) {
	if s == "" {
		return 0, errors.New("no permissions")
	}
	var p Perm
	next := 0
	for i := 0; i < len(s); i++ {
		j := strings.IndexByte(permLetters[next:], s[i])
		if j < 0 {
			if strings.IndexByte(permLetters, s[i]) < 0 {
				return 0, fmt.Errorf("%q is not one of c r u d s", s[i])
			}
			return 0, fmt.Errorf("permissions must be in the order c r u d s, once each")
		}
		next += j + 1
		p |= 1 << (next - 1)
	}
	return p, nil
}

func parseScopeQuery(q string) ([]ScopeParam, error) {
	if q == "" {
		return nil, errors.New("empty query")
	}
	var out []ScopeParam
	for pair := range strings.SplitSeq(q, "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("query part %q is not name=value", pair)
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		if !isGranularParam(name) {
			return nil, fmt.Errorf("parameter %q cannot be enforced in a scope (supported: %s)", name, strings.Join(GranularParams, ", "))
		}
		p := ScopeParam{Name: name}
		// Split before unescaping, so that an escaped comma stays inside
		// one value.
		for raw := range strings.SplitSeq(v, ",") {
			alt, err := url.QueryUnescape(raw)
			if err != nil {
				return nil, err
			}
			if alt == "" || alt == "|" {
				return nil, fmt.Errorf("parameter %q has an empty value", name)
			}
			if name == "status" && strings.Contains(alt, "|") {
				return nil, errors.New("status takes plain codes")
			}
			p.Values = append(p.Values, alt)
		}
		out = append(out, p)
	}
	return out, nil
}

func isGranularParam(name string) bool {
	for _, g := range GranularParams {
		if g == name {
			return true
		}
	}
	return false
}

// IsSMART reports whether the scope grants access to resources (it is not
// one of the ignored non-SMART scopes).
func (s Scope) IsSMART() bool { return s.Context != "" }

// String is the canonical v2 form of the scope ("patient/Observation.rs",
// with its query), or Raw for an ignored scope.
func (s Scope) String() string {
	if !s.IsSMART() {
		return s.Raw
	}
	out := string(s.Context) + "/" + s.ResourceType + "." + s.Perms.String()
	if len(s.Query) > 0 {
		out += "?" + s.queryText(scopeTextEscape)
	}
	return out
}

// scopeTextEscape percent-encodes what would change the meaning of a
// scope's query when read back, and leaves the characters of system URLs and
// tokens (":", "/", "|") readable.
func scopeTextEscape(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:/|", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// QueryString is the granular query as a URL query a FHIR server reads the
// same way ("category=a,b&code=c"): search separators inside a value are
// backslash-escaped, then everything is URL-encoded.
func (s Scope) QueryString() string {
	return s.queryText(func(v string) string { return url.QueryEscape(escapeSearchValue(v)) })
}

func (s Scope) queryText(escape func(string) string) string {
	var b strings.Builder
	for i, p := range s.Query {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escape(p.Name))
		b.WriteByte('=')
		for j, v := range p.Values {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(escape(v))
		}
	}
	return b.String()
}

// canonical is String(), cached when the scope came from ParseScope.
func (s Scope) canonical() string {
	if s.canon != "" {
		return s.canon
	}
	return s.String()
}

// coversType reports whether the scope reaches resources of type t.
func (s Scope) coversType(t string) bool {
	return s.ResourceType == "*" || s.ResourceType == t
}
