package policy

import (
	"fmt"
	"strings"

	"github.com/fhirwall/fhirwall/fhir"
)

// operationAllowed reports whether a role allows the operation by name.
func (d *decider) operationAllowed(name string) bool {
	for _, op := range d.ops {
		if strings.TrimPrefix(op, "$") == name {
			return true
		}
	}
	return false
}

// operation decides an operation: denied unless a role names it. Allowed
// operations still need a scope on the type they run on, and their output
// passes the response check. $everything is treated as a search of the
// patient's compartment: each returned resource is checked like a search
// entry.
func (d *decider) operation(req *fhir.Request) Decision {
	if !d.operationAllowed(req.Operation) {
		return denyDecision(fhir.ReasonOperationDenied, "operation $%s is not allowed for this agent", req.Operation)
	}
	if r := formatRefusal(req); r != nil {
		return *r
	}
	t := req.ResourceType
	if req.Operation == "everything" {
		return d.everything(req)
	}
	switch req.OperationLevel {
	case fhir.LevelSystem:
		if d.patient != "" {
			return denyDecision(fhir.ReasonCompartmentViolation, "system-level operations cannot be confined to a patient")
		}
		if len(d.grantWildcard(PermRead)) == 0 {
			return denyDecision(fhir.ReasonScopeMissing, "system-level operation $%s needs read on all types", req.Operation)
		}
		return Decision{Allow: true, Matched: d.grantWildcard(PermRead), Check: d.newCheck(true, PermRead|PermSearch), HideTotal: true}
	case fhir.LevelType:
		if d.patient != "" && !patientReferenceTypes[t] {
			return denyDecision(fhir.ReasonCompartmentViolation, "type-level operations on %s cannot be confined to a patient", t)
		}
	case fhir.LevelInstance:
		if r := d.instanceOutsidePatient(t, req.ID); r != nil {
			return *r
		}
	}
	matched := d.grant(t, PermRead)
	if len(matched) == 0 {
		return denyDecision(fhir.ReasonScopeMissing, "no scope grants read on %s for $%s", t, req.Operation)
	}
	out := Decision{Allow: true, Matched: matched, HideTotal: true,
		Check: d.newCheck(true, PermRead|PermSearch)}
	if req.OperationLevel == fhir.LevelInstance && t != "Patient" && d.patient != "" {
		out.Prefetch, out.NotFoundOnRefusal = true, true
	}
	return out
}

// everything decides Patient/$everything. Under patient/ scopes only the
// token patient's record; the types returned are those of _type when
// given, and every returned resource is checked and dropped if unreadable.
func (d *decider) everything(req *fhir.Request) Decision {
	if req.ResourceType != "Patient" {
		return denyDecision(fhir.ReasonNotSupported, "$everything is supported on Patient only")
	}
	if req.OperationLevel != fhir.LevelInstance {
		if d.patient != "" {
			return denyDecision(fhir.ReasonCompartmentViolation, "Patient/$everything covers every patient; use Patient/[token patient]/$everything")
		}
	} else if d.patient != "" && req.ID != d.patient {
		dd := denyDecision(fhir.ReasonCompartmentViolation, "the Patient addressed is not the token's patient")
		dd.NotFoundOnRefusal = true
		return dd
	}
	matched := d.grant("Patient", PermRead)
	if len(matched) == 0 {
		return denyDecision(fhir.ReasonScopeMissing, "$everything needs read on Patient")
	}
	for _, t := range req.PullIns.Types {
		m := d.grant(t, PermRead)
		if len(m) == 0 || d.patient != "" && !patientReachable(t) {
			return denyDecision(fhir.ReasonScopeMissing, "_type names %s, which this agent may not read", t)
		}
		matched = appendScopeNames(matched, m...)
	}
	if r := d.joins(req); r != nil {
		return *r
	}
	return Decision{Allow: true, Matched: matched, HideTotal: true, NotFoundOnRefusal: req.ID != "",
		Check: d.newCheck(true, PermRead|PermSearch)}
}

// bundle decides a batch or transaction entry by entry. A batch is allowed
// as a whole and carries each entry's decision; a transaction is refused
// whole when any entry is refused, because its entries commit together.
func (d *decider) bundle(req *fhir.Request) Decision {
	out := Decision{Allow: true, EntryDecisions: make([]Decision, len(req.Entries))}
	for i, e := range req.Entries {
		var ed Decision
		if e.Err != nil {
			detail := ""
			var fe *fhir.Error
			if decideAsFHIRError(e.Err, &fe) {
				detail = fe.Detail
			}
			ed = Decision{Reason: fhir.ReasonOf(e.Err), Detail: detail}
		} else {
			ed = d.decide(e.Request, false)
		}
		out.EntryDecisions[i] = ed
		if !ed.Allow && req.Interaction == fhir.InteractionTransaction && out.Allow {
			out.Allow = false
			out.Reason = ed.Reason
			out.Detail = fmt.Sprintf("transaction entry %d refused: %s", i, ed.Detail)
		}
	}
	if out.Allow {
		// The response Bundle's entries answer different requests; each is
		// checked with every permission the agent has.
		out.Check = d.newCheck(true, permAll)
		out.HideTotal = true
	}
	return out
}
