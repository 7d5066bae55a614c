package policy

import (
	"fmt"
	"strings"

	"github.com/fhirwall/fhirwall/fhir"
)

// search decides search-type, search-compartment, search-system and the
// type and system history interactions.
func (d *decider) search(req *fhir.Request) Decision {
	if r := formatRefusal(req); r != nil {
		return *r
	}
	t := req.ResourceType
	i := req.Interaction
	if d.patient != "" {
		switch i {
		case fhir.InteractionSearchSystem, fhir.InteractionHistorySystem, fhir.InteractionHistoryType:
			// None of these can be narrowed to one patient by a parameter.
			return denyDecision(fhir.ReasonCompartmentViolation,
				"%s cannot be confined to a patient; search a type or /Patient/[token patient]/[type] instead", i.AuditCode())
		case fhir.InteractionSearchCompartment:
			if req.CompartmentType != "Patient" || req.CompartmentID != d.patient {
				return denyDecision(fhir.ReasonCompartmentViolation, "the compartment searched is not the token patient's")
			}
		}
	}
	// The types the search returns as matches.
	types := []string{t}
	switch {
	case i == fhir.InteractionSearchSystem && len(req.PullIns.Types) > 0:
		types = req.PullIns.Types
	case t == "": // system search or history without _type, /Patient/1/*
		types = []string{"*"}
	}
	out := Decision{Allow: true}
	for _, typ := range types {
		m := d.grant(typ, PermSearch)
		if typ == "*" {
			m = d.grantWildcard(PermSearch)
		}
		if len(m) == 0 {
			return denyDecision(fhir.ReasonScopeMissing, "no scope grants search on %s", scopeTypeName(typ))
		}
		out.Matched = appendScopeNames(out.Matched, m...)
	}
	if r := d.joins(req); r != nil {
		return *r
	}
	if len(req.PullIns.Elements) > 0 {
		if r := d.elementsRefusal(req, types, PermSearch); r != nil {
			return *r
		}
	}
	exact := true
	if i == fhir.InteractionSearchType || i == fhir.InteractionSearchCompartment && t != "" {
		if d.patient != "" && i == fhir.InteractionSearchType {
			n, r := d.patientNarrowing(req)
			if r != nil {
				return *r
			}
			out.Narrowing = append(out.Narrowing, n...)
		}
		g, ok := d.granularNarrowing(t, PermSearch)
		out.Narrowing = append(out.Narrowing, g...)
		exact = ok
		for _, n := range g {
			if _, dup := req.Param(n.Name); dup {
				// Which occurrence a server honours is not certain; the
				// check enforces the scope and totals are hidden.
				exact = false
			}
		}
	} else {
		// Several types, all types, or history: no granular narrowing is
		// sent, so the check alone enforces granular scopes.
		for _, typ := range types {
			if typ == "*" && d.anyGranular() || typ != "*" && d.restricted(typ, PermSearch) {
				exact = false
			}
		}
	}
	if !exact {
		out.HideTotal = true
		if req.PullIns.Summary == "count" {
			return denyDecision(fhir.ReasonScopeMissing, "_summary=count would count resources a granular scope hides")
		}
	}
	out.Check = d.newCheck(true, PermRead|PermSearch)
	return out
}

func scopeTypeName(t string) string {
	if t == "*" || t == "" {
		return "all types"
	}
	return t
}

func appendScopeNames(dst []string, vs ...string) []string {
	for _, v := range vs {
		dst = appendUniqueID(dst, v)
	}
	return dst
}

// grantWildcard returns the unrestricted "*" scopes granting perm: only
// they reach every type.
func (d *decider) grantWildcard(perm Perm) []string {
	var out []string
	for _, s := range d.set.scopes {
		if s.ResourceType == "*" && s.Perms&perm == perm && len(s.Query) == 0 {
			out = append(out, s.canonical())
		}
	}
	return out
}

// restricted reports whether only granular scopes grant perm on t.
func (d *decider) restricted(t string, perm Perm) bool {
	return len(d.set.matching(t, perm)) > 0 && !d.set.permitsUnrestricted(t, perm)
}

func (d *decider) anyGranular() bool {
	for _, s := range d.set.scopes {
		if len(s.Query) > 0 {
			return true
		}
	}
	return false
}

// readsAll reports whether an unrestricted wildcard scope grants read: the
// only way to authorize a join whose target types are unknown.
func (d *decider) readsAll() bool { return len(d.grantWildcard(PermRead)) > 0 }

// joins authorizes what a search pulls in beyond its matches. Included and
// reverse-included types must be readable (and, under patient/ scopes,
// reachable from a patient compartment); an _include without a target type
// (Claim:patient) can return every type R4 lets its parameter point to
// (fhir.ReferenceTargets), so each of those must be; the check still
// re-examines every returned entry. _has and chained parameters are oracles on resources that
// are never returned, so they need unrestricted search on every type they
// traverse; under patient/ scopes they are refused unless they only
// traverse reference data.
func (d *decider) joins(req *fhir.Request) *Decision {
	pi := &req.PullIns
	refuse := func(reason fhir.Reason, format string, args ...any) *Decision {
		dd := denyDecision(reason, format, args...)
		return &dd
	}
	readable := func(t string) bool {
		if d.patient != "" && !patientReachable(t) {
			return false
		}
		return len(d.set.matching(t, PermRead)) > 0
	}
	for _, list := range [...]struct {
		name string
		incs []fhir.Include
	}{{"_include", pi.Include}, {"_revinclude", pi.RevInclude}} {
		for _, inc := range list.incs {
			// An _include returns its Target; a _revinclude its Source.
			t := inc.Target
			if list.name == "_revinclude" {
				t = inc.Source
			}
			if inc.Wildcard {
				if !d.readsAll() {
					return refuse(fhir.ReasonScopeMissing,
						"%s=*, or of every parameter, can return any type; name each (e.g. Observation:subject:Patient)", list.name)
				}
				continue
			}
			if t == "" {
				// Type:param without a target returns whatever that
				// parameter can point to in R4: every such type must be
				// readable.
				if d.readsAll() {
					continue
				}
				targets, ok := fhir.ReferenceTargets(inc.Source, inc.Param)
				if !ok {
					return refuse(fhir.ReasonScopeMissing,
						"%s=%s:%s names no R4 reference parameter of %s; name the target type (e.g. Observation:subject:Patient)",
						list.name, inc.Source, inc.Param, inc.Source)
				}
				var can, cannot []string
				for _, tt := range targets {
					if readable(tt) {
						can = append(can, tt)
					} else {
						cannot = append(cannot, tt)
					}
				}
				if len(cannot) > 0 {
					hint := ""
					if len(can) > 0 {
						hint = fmt.Sprintf("; name the target type this agent may read (%s:%s:%s)", inc.Source, inc.Param, can[0])
					}
					return refuse(fhir.ReasonScopeMissing, "%s=%s:%s can return %s, which no scope lets this agent read%s",
						list.name, inc.Source, inc.Param, listSome(cannot, 4), hint)
				}
				continue
			}
			if !readable(t) {
				return refuse(fhir.ReasonScopeMissing, "%s returns %s, which no scope lets this agent read", list.name, t)
			}
		}
	}
	for _, h := range pi.Has {
		if d.patient != "" {
			return refuse(fhir.ReasonCompartmentViolation, "_has is not available under patient/ scopes")
		}
		for _, hop := range h.Hops {
			if !d.set.permitsUnrestricted(hop.Type, PermSearch) {
				return refuse(fhir.ReasonScopeMissing, "_has searches %s, which this agent may not search without restriction", hop.Type)
			}
		}
		if r := d.chainRefusal(h.Target, refuse); r != nil {
			return r
		}
	}
	for _, p := range pi.Chained {
		if r := d.chainRefusal(p, refuse); r != nil {
			return r
		}
	}
	// _filter can chain anywhere and _query runs server-defined logic:
	// only an agent that may search everything without restriction may
	// use them.
	if len(pi.Filter) > 0 || len(pi.Query) > 0 {
		if d.patient != "" || !d.set.permitsUnrestricted("*", PermSearch) {
			return refuse(fhir.ReasonScopeMissing, "_filter and _query can reach any type; they need unrestricted search on all types")
		}
	}
	// _list tests membership of a List, which may be another patient's.
	if len(pi.List) > 0 {
		if d.patient != "" {
			return refuse(fhir.ReasonCompartmentViolation, "_list is not available under patient/ scopes")
		}
		if !d.set.permitsUnrestricted("List", PermRead) {
			return refuse(fhir.ReasonScopeMissing, "_list reads a List, which this agent may not read without restriction")
		}
	}
	if pi.Contained != "" && pi.Contained != "false" {
		if d.patient != "" || !d.readsAll() {
			return refuse(fhir.ReasonScopeMissing, "_contained=%s returns contained resources of any type", pi.Contained)
		}
	}
	return nil
}

// elementsRefusal refuses an _elements list that would strip what the
// response check reads: the compartment links under patient/ scopes and the
// elements of granular scopes. The check would otherwise drop every match
// (it cannot see the link), which looks like an empty result.
func (d *decider) elementsRefusal(req *fhir.Request, types []string, perm Perm) *Decision {
	els := req.PullIns.Elements
	if len(els) == 0 {
		return nil
	}
	has := func(el string) bool {
		for _, e := range els {
			if e == el || strings.HasSuffix(e, "."+el) {
				return true
			}
		}
		return false
	}
	for _, t := range types {
		if d.patient != "" && t != "Patient" && fhir.InPatientCompartment(t) {
			links := compartmentElements(t)
			found := false
			for el := range links {
				if has(el) {
					found = true
					break
				}
			}
			if !found {
				dd := denyDecision(fhir.ReasonRequestInvalid, "_elements must keep an element linking %s to the patient (e.g. %s)", t, fhir.PatientCompartmentParams(t)[0].Paths[0][0])
				return &dd
			}
		}
		if d.set.permitsUnrestricted(t, perm) {
			continue
		}
		for _, s := range d.set.matching(t, perm) {
			for _, p := range s.Query {
				if el := granularElements[p.Name]; !has(el) {
					dd := denyDecision(fhir.ReasonRequestInvalid, "_elements must keep %s, which a granular scope reads", el)
					return &dd
				}
			}
		}
	}
	return nil
}

// chainRefusal authorizes one chained parameter: every type it traverses
// needs unrestricted search; an untyped link can reach any type; under
// patient/ scopes only reference data may be traversed.
func (d *decider) chainRefusal(p fhir.SearchParam, refuse func(fhir.Reason, string, ...any) *Decision) *Decision {
	types, complete := p.ChainTypes()
	if !complete {
		if d.patient != "" || !d.set.permitsUnrestricted("*", PermSearch) {
			return refuse(fhir.ReasonScopeMissing, "chained parameter %s needs a type on every link (e.g. subject:Patient.name)", p.Key)
		}
	}
	for _, t := range types {
		if d.patient != "" && !patientReferenceTypes[t] {
			return refuse(fhir.ReasonCompartmentViolation, "chained parameter %s reaches %s outside the patient's compartment", p.Key, t)
		}
		if !d.set.permitsUnrestricted(t, PermSearch) {
			return refuse(fhir.ReasonScopeMissing, "chained parameter %s searches %s, which this agent may not search without restriction", p.Key, t)
		}
	}
	return nil
}

// preferredCompartmentParams are tried in order to pick the one parameter
// that narrows a search to the patient.
var preferredCompartmentParams = []string{"patient", "subject", "beneficiary", "member", "actor"}

// patientNarrowing returns the parameter confining a type search to the
// token patient, and refuses a search that explicitly names another patient
// through a compartment parameter.
func (d *decider) patientNarrowing(req *fhir.Request) ([]QueryParam, *Decision) {
	t := req.ResourceType
	if patientReferenceTypes[t] {
		return nil, nil
	}
	if t == "Patient" {
		for _, sp := range req.Params {
			if sp.Name != "_id" {
				continue
			}
			for _, v := range sp.Values {
				if v != d.patient || sp.Modifier != "" {
					dd := denyDecision(fhir.ReasonCompartmentViolation, "parameter _id is set by the gateway to the token's patient")
					return nil, &dd
				}
			}
		}
		return []QueryParam{{Name: "_id", Value: d.patient}}, nil
	}
	params := fhir.PatientCompartmentParams(t)
	if len(params) == 0 {
		dd := denyDecision(fhir.ReasonCompartmentViolation, "%s is in no patient compartment and is not reference data", t)
		return nil, &dd
	}
	for _, sp := range req.Params {
		if len(sp.Chain) > 0 || sp.Modifier != "" && sp.Modifier != "Patient" {
			continue
		}
		// A parameter that can only point to a Patient names a patient
		// (a bare id too) even when it is none of the type's compartment
		// parameters (Observation's patient; its compartment has subject
		// and performer): another patient is refused through it as
		// through subject, not narrowed to an empty result.
		patientOnly := onlyPatient(t, sp.Name)
		if !patientOnly && !isCompartmentParam(params, sp.Name) {
			continue
		}
		for _, v := range sp.Values {
			id, ok := fhir.PatientIDFromReference(v)
			if !ok && (patientOnly || sp.Modifier == "Patient") && fhir.ValidID(v) {
				id, ok = v, true
			}
			if ok && id != d.patient {
				dd := denyDecision(fhir.ReasonCompartmentViolation, "the search names a patient other than the token's")
				return nil, &dd
			}
		}
	}
	name := params[0].Name
	for _, pref := range preferredCompartmentParams {
		if isCompartmentParam(params, pref) {
			name = pref
			break
		}
	}
	// The agent's own occurrences of the narrowing parameter must name the
	// token patient too: a server that reads only the first occurrence of a
	// repeated parameter would otherwise ignore the narrowing.
	for _, sp := range req.Params {
		if sp.Name != name {
			continue
		}
		for _, v := range sp.Values {
			id, ok := fhir.PatientIDFromReference(v)
			if !ok && fhir.ValidID(v) {
				id, ok = v, true
			}
			if !ok || id != d.patient || len(sp.Chain) > 0 || sp.Modifier != "" && sp.Modifier != "Patient" {
				dd := denyDecision(fhir.ReasonCompartmentViolation, "parameter %s is set by the gateway to the token's patient", name)
				return nil, &dd
			}
		}
	}
	return []QueryParam{{Name: name, Value: "Patient/" + d.patient}}, nil
}

// onlyPatient reports whether the search parameter name of type t is a
// reference that R4 lets point to a Patient only.
func onlyPatient(t, name string) bool {
	targets, _ := fhir.ReferenceTargets(t, name)
	return len(targets) == 1 && targets[0] == "Patient"
}

func isCompartmentParam(params []fhir.CompartmentParam, name string) bool {
	for _, p := range params {
		if p.Name == name {
			return true
		}
	}
	return false
}

// granularNarrowing returns the parameter that applies the granular scopes
// granting perm on t to a search, and whether it is exact. There is nothing
// to add when an unrestricted scope grants perm. Otherwise the granular
// scopes OR together, which one search parameter can only express when
// each has a single parameter, all the same one; then its values are
// joined with commas. In every other case nothing is added and the result
// is not exact: the response check drops what does not match, and totals
// must be hidden.
func (d *decider) granularNarrowing(t string, perm Perm) ([]QueryParam, bool) {
	ms := d.set.matching(t, perm)
	if len(ms) == 0 {
		return nil, true
	}
	name := ""
	var values []string
	for _, s := range ms {
		if len(s.Query) == 0 {
			return nil, true
		}
		if len(s.Query) != 1 || name != "" && s.Query[0].Name != name {
			return nil, false
		}
		name = s.Query[0].Name
		for _, v := range s.Query[0].Values {
			values = appendUniqueID(values, escapeSearchValue(v))
		}
	}
	return []QueryParam{{Name: name, Value: strings.Join(values, ",")}}, true
}

// escapeSearchValue escapes the FHIR search separators in one value.
func escapeSearchValue(v string) string {
	if !strings.ContainsAny(v, `,\$`) {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `$`, `\$`)
	return r.Replace(v)
}

// listSome joins up to n of xs, saying how many more there are.
func listSome(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(xs[:n], ", "), len(xs)-n)
}
