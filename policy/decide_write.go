package policy

import (
	"github.com/fhirwall/fhirwall/fhir"
)

// granularElements are the top-level elements a granular scope parameter
// reads; a patch under a granular scope must not touch them, or it could
// move a resource out of (or into) what the scope permits.
var granularElements = map[string]string{
	"category": "category", "code": "code", "status": "status", "_tag": "meta", "_security": "meta",
}

// write decides create, update, patch and delete, plain and conditional.
func (d *decider) write(req *fhir.Request) Decision {
	t := req.ResourceType
	var need Perm
	switch req.Interaction {
	case fhir.InteractionCreate:
		need = PermCreate
	case fhir.InteractionUpdate, fhir.InteractionPatch:
		need = PermUpdate
	case fhir.InteractionDelete:
		need = PermDelete
	}
	if req.Conditional {
		// The criteria are a search (a 200/201 or 412 discloses matches),
		// and a conditional update that matches nothing creates.
		need |= PermSearch
		if req.Interaction == fhir.InteractionUpdate {
			need |= PermCreate
		}
	}
	matched := d.grant(t, need)
	if len(matched) == 0 {
		return denyDecision(fhir.ReasonScopeMissing, "no scope grants %s on %s", need, t)
	}
	out := Decision{Allow: true, Matched: matched}
	if req.Conditional {
		if r := d.joins(req); r != nil {
			return *r
		}
		if d.patient != "" {
			n, r := d.patientNarrowing(req)
			if r != nil {
				return *r
			}
			out.Narrowing = append(out.Narrowing, n...)
		}
		g, _ := d.granularNarrowing(t, need)
		out.Narrowing = append(out.Narrowing, g...)
	}
	if d.patient != "" {
		if r := d.patientWrite(req, &out); r != nil {
			return *r
		}
	}
	if r := d.granularWrite(req, need, &out); r != nil {
		return *r
	}
	// The check serves the prefetch (the current version must be within a
	// scope granting this write) and the echo of the written resource.
	out.Check = d.newCheck(false, PermRead|need)
	return out
}

// patientWrite keeps a patient/ write inside the token patient's
// compartment: only compartment types, bodies whose patient references all
// name the token patient, no patch of a compartment link, and the current
// version of an addressed resource checked before it is changed.
func (d *decider) patientWrite(req *fhir.Request, out *Decision) *Decision {
	t := req.ResourceType
	refuse := func(format string, args ...any) *Decision {
		dd := denyDecision(fhir.ReasonCompartmentViolation, format, args...)
		return &dd
	}
	if !fhir.InPatientCompartment(t) {
		return refuse("patient/ scopes cannot write %s, which is in no patient compartment", t)
	}
	if t == "Patient" {
		if req.Interaction == fhir.InteractionCreate || req.Conditional {
			return refuse("patient/ scopes cannot create or conditionally change Patient resources")
		}
		if req.ID != d.patient {
			dd := denyDecision(fhir.ReasonCompartmentViolation, "the Patient addressed is not the token's patient")
			dd.NotFoundOnRefusal = true
			return &dd
		}
	}
	switch req.Interaction {
	case fhir.InteractionCreate, fhir.InteractionUpdate:
		refs, _ := fhir.PatientRefs(t, req.Body)
		if len(refs) == 0 {
			return refuse("the %s does not reference the token's patient", t)
		}
		for _, id := range refs {
			if id != d.patient {
				return refuse("the %s references a patient other than the token's", t)
			}
		}
	case fhir.InteractionPatch:
		if req.Patch == nil {
			return refuse("the patch cannot be read")
		}
		links := compartmentElements(t)
		for _, el := range req.Patch.Elements {
			if el == "" || el == "id" || el == "resourceType" || links[el] {
				return refuse("the patch touches %s, which links the resource to a patient", patchElementName(el))
			}
		}
	}
	if !req.Conditional && req.ID != "" && t != "Patient" {
		out.Prefetch = true
		out.NotFoundOnRefusal = true
	}
	return nil
}

// compartmentElements returns the top-level elements behind t's patient
// compartment parameters.
func compartmentElements(t string) map[string]bool {
	out := map[string]bool{}
	for _, p := range fhir.PatientCompartmentParams(t) {
		for _, path := range p.Paths {
			out[path[0]] = true
		}
	}
	return out
}

func patchElementName(el string) string {
	if el == "" {
		return "the whole resource"
	}
	return el
}

// granularWrite enforces granular scopes on writes: when only granular
// scopes grant the write, the body must match one of their queries, a patch
// must not touch the elements they read, and an addressed resource must
// match before it is changed (Prefetch).
func (d *decider) granularWrite(req *fhir.Request, need Perm, out *Decision) *Decision {
	ms := d.set.matching(req.ResourceType, need)
	var granular []Scope
	for _, s := range ms {
		if len(s.Query) == 0 {
			return nil
		}
		granular = append(granular, s)
	}
	if len(granular) == 0 {
		return nil
	}
	refuse := func(format string, args ...any) *Decision {
		dd := denyDecision(fhir.ReasonScopeMissing, format, args...)
		return &dd
	}
	switch req.Interaction {
	case fhir.InteractionCreate, fhir.InteractionUpdate:
		ok := false
		for _, s := range granular {
			if scopeQueryMatches(s.Query, req.Body) {
				ok = true
				break
			}
		}
		if !ok {
			return refuse("the %s does not match the granular scope (%s)", req.ResourceType, granular[0].QueryString())
		}
	case fhir.InteractionPatch:
		if req.Patch == nil {
			return refuse("the patch cannot be read")
		}
		for _, el := range req.Patch.Elements {
			for _, s := range granular {
				for _, p := range s.Query {
					if el == "" || granularElements[p.Name] == el {
						return refuse("the patch touches %s, which a granular scope restricts", patchElementName(el))
					}
				}
			}
		}
	}
	if !req.Conditional && req.ID != "" {
		out.Prefetch = true
		out.NotFoundOnRefusal = true
	}
	return nil
}
