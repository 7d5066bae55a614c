package policy

import (
	"fmt"
	"slices"
	"strings"
)

// ScopeSet is the union of the SMART scopes an agent holds for one request.
// Build it with NewScopeSet or MapScopes; it is immutable afterwards and
// safe for concurrent use.
type ScopeSet struct {
	scopes []Scope
	// mixed records that the scopes presented mixed patient/ with user/ or
	// system/ contexts, even if the ceilings later removed one side.
	mixed bool
}

// NewScopeSet returns the union of scopes. Ignored (non-SMART) scopes are
// dropped; duplicates are kept once.
func NewScopeSet(scopes ...Scope) ScopeSet {
	var set ScopeSet
	for _, s := range scopes {
		set.add(s)
	}
	set.mixed = contextsMixed(set.scopes)
	return set
}

func (set *ScopeSet) add(s Scope) {
	if !s.IsSMART() {
		return
	}
	key := s.canonical()
	for _, e := range set.scopes {
		if e.canonical() == key {
			return
		}
	}
	set.scopes = append(set.scopes, s)
}

func contextsMixed(scopes []Scope) bool {
	var patient, other bool
	for _, s := range scopes {
		if s.Context == ContextPatient {
			patient = true
		} else if s.IsSMART() {
			other = true
		}
	}
	return patient && other
}

// Scopes returns the scopes of the set; the caller must not modify them.
func (set ScopeSet) Scopes() []Scope { return set.scopes }

// Len is the number of scopes in the set.
func (set ScopeSet) Len() int { return len(set.scopes) }

// ContextMixed reports whether the scopes presented mixed patient/ with
// user/ or system/ contexts. Decide refuses such a set with
// scope-context-mixed.
func (set ScopeSet) ContextMixed() bool { return set.mixed }

// PatientContext reports whether the set holds patient/ scopes (and so,
// unless ContextMixed, only patient/ scopes).
func (set ScopeSet) PatientContext() bool {
	for _, s := range set.scopes {
		if s.Context == ContextPatient {
			return true
		}
	}
	return false
}

// Permits reports whether some scope of the given context grants
// interaction letter ('c', 'r', 'u', 'd' or 's') on resourceType. A granular
// scope permits here too: its query is enforced by narrowing and by the
// response check, not by Permits. An unknown letter permits nothing.
func (set ScopeSet) Permits(ctx ScopeContext, resourceType string, letter byte) bool {
	p := PermOf(letter)
	if p == 0 {
		return false
	}
	for _, s := range set.scopes {
		if s.Context == ctx && s.Perms&p != 0 && s.coversType(resourceType) {
			return true
		}
	}
	return false
}

// matching returns the scopes (of any context) granting all of perm on t.
func (set ScopeSet) matching(t string, perm Perm) []Scope {
	var out []Scope
	for _, s := range set.scopes {
		if s.Perms&perm == perm && s.coversType(t) {
			out = append(out, s)
		}
	}
	return out
}

// permitsUnrestricted reports whether a scope without granular query grants
// perm on t. Joins (_has, chains) evaluate resources the agent never sees, so
// a granular restriction cannot be applied to them: only an unrestricted
// scope lets them through.
func (set ScopeSet) permitsUnrestricted(t string, perm Perm) bool {
	for _, s := range set.scopes {
		if s.Perms&perm == perm && s.coversType(t) && len(s.Query) == 0 {
			return true
		}
	}
	return false
}

// String lists the scopes, space separated, in canonical form.
func (set ScopeSet) String() string {
	parts := make([]string, len(set.scopes))
	for i, s := range set.scopes {
		parts[i] = s.canonical()
	}
	return strings.Join(parts, " ")
}

// MapScopes computes an agent's effective scopes for one token.
//
// Each token scope is first replaced by its scope_map entry when it has one
// (custom names become SMART scopes), otherwise parsed as a SMART scope;
// recognised non-SMART scopes (openid, launch/patient, ...) are ignored.
// Every resulting scope is then intersected with every ceiling (the scopes
// of the agent's roles), and the effective set is the union of the non-empty
// intersections. The intersection of a token scope T and a ceiling C is
// defined as:
//
//   - contexts must be equal: a system/ ceiling covers system/ scopes only,
//     a user/ ceiling user/ scopes, a patient/ ceiling patient/ scopes;
//   - types: C "*" keeps T's type, T "*" takes C's type, else both equal;
//   - permissions: the letters both grant;
//   - granular queries: both apply (AND), so the result is never wider
//     than either side.
//
// problems lists, in words safe to log and show an admin (scope names, no
// token), every scope that could not be parsed (token, map or ceiling),
// every token scope that no ceiling covers at all, and a token that mixes
// patient/ with user/ or system/ contexts (the set is then marked
// ContextMixed and Decide refuses every request). Unparseable scopes grant
// nothing.
func MapScopes(tokenScopes []string, scopeMap map[string][]string, ceilings []string) (effective ScopeSet, problems []string) {
	var ceil []Scope
	for _, c := range ceilings {
		s, err := ParseScope(c)
		if err != nil {
			problems = append(problems, fmt.Sprintf("role ceiling: %v", err))
			continue
		}
		if s.IsSMART() {
			ceil = append(ceil, s)
		}
	}
	var granted []Scope
	for _, ts := range tokenScopes {
		names := []string{ts}
		mapped, isMapped := scopeMap[ts]
		if isMapped {
			names = mapped
		}
		for _, name := range names {
			s, err := ParseScope(name)
			if err != nil {
				if isMapped {
					problems = append(problems, fmt.Sprintf("scope_map[%s]: %v", ts, err))
				} else {
					problems = append(problems, fmt.Sprintf("token scope ignored: %v", err))
				}
				continue
			}
			if s.IsSMART() {
				granted = append(granted, s)
			}
		}
	}
	if contextsMixed(granted) {
		problems = append(problems, "the token mixes patient/ with user/ or system/ scopes")
		effective.mixed = true
	}
	for _, g := range granted {
		covered := false
		for _, c := range ceil {
			if s, ok := intersectScope(g, c); ok {
				effective.add(s)
				covered = true
			}
		}
		if !covered {
			problems = append(problems, fmt.Sprintf("scope %s is beyond the agent's roles", g.String()))
		}
	}
	return effective, problems
}

// intersectScope returns token ∩ ceiling (see MapScopes) and whether it is
// non-empty.
func intersectScope(token, ceiling Scope) (Scope, bool) {
	if token.Context != ceiling.Context {
		return Scope{}, false
	}
	var typ string
	switch {
	case ceiling.ResourceType == "*":
		typ = token.ResourceType
	case token.ResourceType == "*" || token.ResourceType == ceiling.ResourceType:
		typ = ceiling.ResourceType
	default:
		return Scope{}, false
	}
	perms := token.Perms & ceiling.Perms
	if perms == 0 {
		return Scope{}, false
	}
	out := Scope{Context: token.Context, ResourceType: typ, Perms: perms}
	out.Query = slices.Clone(token.Query)
	for _, cq := range ceiling.Query {
		// The same restriction on both sides applies once: a duplicate
		// would only stop the search narrowing from being exact.
		if !slices.ContainsFunc(out.Query, func(tq ScopeParam) bool {
			return tq.Name == cq.Name && slices.Equal(tq.Values, cq.Values)
		}) {
			out.Query = append(out.Query, cq)
		}
	}
	out.Raw = out.String()
	out.canon = out.Raw
	return out, true
}
