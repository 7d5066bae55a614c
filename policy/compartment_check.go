package policy

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/tidwall/gjson"
)

// Verdicts of ResourceCheck.CheckResource. The values are those of the
// masking package's Verdict: 0 keep, 1 drop, 2 refuse.
const (
	// CheckKeep: the agent may see the resource (masks still apply).
	CheckKeep = 0
	// CheckDrop: leave the resource out (a Bundle entry, a contained or
	// Parameters resource, an NDJSON line) and carry on.
	CheckDrop = 1
	// CheckRefuse: refuse the whole response. Returned for a top-level
	// resource the agent may not see; for reads the gateway must answer
	// exactly as for a missing resource (see Decision.NotFoundOnRefusal).
	CheckRefuse = 2
)

// Placements: the where argument of CheckResource. The values are those
// of the masking package's Placement.
const (
	WhereTopLevel     = 0 // the resource is the whole response body
	WhereBundleEntry  = 1 // Bundle.entry.resource, at any nesting level
	WhereContained    = 2 // DomainResource.contained
	WhereParameters   = 3 // Parameters.parameter.resource (also in parts)
	WhereEntryOutcome = 4 // Bundle.entry.response.outcome
	WhereNDJSON       = 5 // one line of an NDJSON body
)

// patientReferenceTypes are the types in no patient compartment that
// patient/ scopes may still read, explicitly or through patient/*: shared
// reference data a patient's own records point at (the drug of a
// MedicationRequest, the practitioner of an Encounter, a terminology). They
// are returned without a compartment check and can never be written under a
// patient/ scope. Every other type outside the compartment (Task, Binary,
// Bundle, Device, Contract, MessageHeader, Subscription, ...) may carry
// another patient's data without a compartment link, so patient/ scopes
// never reach it: use a user/ or system/ scope.
var patientReferenceTypes = map[string]bool{
	"Medication": true, "MedicationKnowledge": true, "Substance": true,
	"Organization": true, "Practitioner": true, "PractitionerRole": true,
	"Location": true, "HealthcareService": true, "Endpoint": true, "InsurancePlan": true,
	"ValueSet": true, "CodeSystem": true, "ConceptMap": true, "NamingSystem": true,
	"Questionnaire": true, "StructureDefinition": true, "SearchParameter": true,
	"OperationDefinition": true, "CapabilityStatement": true,
	"ActivityDefinition": true, "PlanDefinition": true, "Library": true, "Measure": true,
	"ObservationDefinition": true, "SpecimenDefinition": true, "DeviceDefinition": true,
}

// IsPatientReferenceType reports whether t is shared reference data that
// patient/ scopes may read without a compartment check (see
// patientReferenceTypes for the list and the reasoning).
func IsPatientReferenceType(t string) bool { return patientReferenceTypes[t] }

// patientReachable reports whether a patient/ scope can reach type t at all.
func patientReachable(t string) bool {
	return fhir.InPatientCompartment(t) || patientReferenceTypes[t]
}

// ResourceCheck decides, for every resource of a response, whether the
// agent may see it: its type must be readable by a scope, the scope's
// granular query must match it, and under patient/ scopes it must be in the
// token patient's compartment (or be reference data). It records the
// patients whose data it let through, for the audit record.
//
// A ResourceCheck belongs to one request (its Patients are that request's
// disclosures) but is safe for concurrent use. Its CheckResource has the
// masking package's Check signature with plain ints for Placement and
// Verdict (adapt with masking.CheckFunc).
type ResourceCheck struct {
	scopes  ScopeSet
	patient string // token patient under patient/ scopes, else ""
	// containers: the response is a Bundle of entries checked one by one,
	// so a top-level Bundle envelope is kept.
	containers bool
	// perms are the letters of which a scope must grant one for a
	// resource to be seen: r or s for reads, plus c or u for the echo of a
	// write.
	perms Perm

	mu       sync.Mutex
	patients []string
	// seen indexes patients: a Bundle of a million entries must not cost
	// a linear scan per entry.
	seen    map[string]struct{}
	dropped int
}

// CheckResource returns CheckKeep, CheckDrop or CheckRefuse for one
// resource of the response, met at placement where (Where* constants).
//
// A resource may be seen when a granted scope reads its type and its
// granular query matches, and, under patient/ scopes, when it is in the
// token patient's compartment or is reference data. Contained resources
// belong to their container: they need a readable type (and matching
// granular query) but no compartment link of their own. OperationOutcomes
// and the envelopes of nested Bundles (whose entries are checked one by
// one) are kept. A failing top-level resource refuses the response; any
// other failing resource is dropped. Invalid JSON, or JSON naming another
// type than resourceType, refuses with an error.
func (c *ResourceCheck) CheckResource(resourceType string, raw []byte, where int) (verdict int, err error) {
	if !gjson.ValidBytes(raw) {
		return CheckRefuse, fhir.Errorf(fhir.ReasonResponseUnmaskable, "a returned resource is not valid JSON")
	}
	// A resource is an object. An array would be read as the list of its
	// elements' links, so [{"subject":{"reference":"Patient/own"}}] would
	// pass for a resource in the agent's compartment.
	if !gjson.ParseBytes(raw).IsObject() {
		return CheckRefuse, fhir.Errorf(fhir.ReasonResponseUnmaskable, "a returned resource is not a JSON object")
	}
	return c.CheckValidResource(resourceType, raw, where)
}

// CheckValidResource is CheckResource for a caller that has already
// validated raw as one well-formed JSON object (the masking rewriter
// validates every resource before it asks): it skips the second parse.
func (c *ResourceCheck) CheckValidResource(resourceType string, raw []byte, where int) (verdict int, err error) {
	// One pass over the resource finds both its declared type and its
	// compartment links (outside the lock: it is the costly part).
	refs, inCompartment, rt, declared := fhir.PatientRefsAndType(resourceType, raw)
	if declared && rt != resourceType {
		return CheckRefuse, fhir.Errorf(fhir.ReasonResponseUnmaskable, "a returned resource is a %s, not a %s", rt, resourceType)
	}
	switch {
	case resourceType == "OperationOutcome":
		return CheckKeep, nil
	case resourceType == "Bundle" && (where != WhereTopLevel || c.containers):
		return CheckKeep, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if reason := c.why(resourceType, raw, where == WhereContained, refs, inCompartment); reason != "" {
		c.dropped++
		if where == WhereTopLevel {
			return CheckRefuse, nil
		}
		return CheckDrop, nil
	}
	return CheckKeep, nil
}

// why returns "" when the resource may be seen, else a short reason. refs
// and inCompartment are fhir.PatientRefs of the resource.
func (c *ResourceCheck) why(resourceType string, raw []byte, contained bool, refs []string, inCompartment bool) string {
	if !c.readableMatch(resourceType, raw) {
		return "no scope permits reading it"
	}
	if c.patient == "" || contained {
		for _, id := range refs {
			c.addPatient(id)
		}
		return ""
	}
	if !inCompartment {
		if patientReferenceTypes[resourceType] {
			return ""
		}
		return "outside any patient compartment"
	}
	for _, id := range refs {
		if id == c.patient {
			c.addPatient(c.patient)
			return ""
		}
	}
	return "outside the patient's compartment"
}

// addPatient records a disclosed patient once.
func (c *ResourceCheck) addPatient(id string) {
	if _, ok := c.seen[id]; ok {
		return
	}
	if c.seen == nil {
		c.seen = make(map[string]struct{})
	}
	// The id may point into a parse of the whole resource: keep a copy of
	// the id, not the resource, for the rest of the response.
	id = strings.Clone(id)
	c.seen[id] = struct{}{}
	c.patients = append(c.patients, id)
}

// readableMatch reports whether a scope granting one of c.perms on the type has a
// granular query the resource matches (or none).
func (c *ResourceCheck) readableMatch(resourceType string, raw []byte) bool {
	for _, s := range c.scopes.scopes {
		if s.Perms&c.perms != 0 && s.coversType(resourceType) && scopeQueryMatches(s.Query, raw) {
			return true
		}
	}
	return false
}

// Patients returns the ids of the patients whose data the check let
// through so far (compartment links of kept resources), in order.
func (c *ResourceCheck) Patients() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.patients)
}

// DrainPatients returns the patients let through since the last drain and
// forgets them (it still remembers that they were seen): a streaming
// caller hands them to the audit as it goes, so the check holds no list
// that grows with the response.
func (c *ResourceCheck) DrainPatients() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.patients) == 0 {
		return nil
	}
	out := c.patients
	c.patients = nil
	if len(c.seen) > maxSeenPatients {
		// Bounded memory beats perfect de-duplication: a patient seen
		// again after this is reported again (harmless downstream: the
		// audit lists it once more, the budget already counts it).
		c.seen = nil
	}
	return out
}

// maxSeenPatients bounds the set DrainPatients de-duplicates against.
const maxSeenPatients = 4096

// Dropped is the number of resources the check has rejected so far.
func (c *ResourceCheck) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

func appendUniqueID(s []string, v string) []string {
	for _, e := range s {
		if e == v {
			return s
		}
	}
	return append(s, v)
}

// scopeQueryMatches evaluates a granular scope query on a resource: every
// parameter must match (AND), any value of a parameter may (OR). An element
// that is absent or of an unexpected shape does not match: what cannot be
// evaluated narrows to nothing.
func scopeQueryMatches(q []ScopeParam, raw []byte) bool {
	for _, p := range q {
		if !scopeParamMatches(p, raw) {
			return false
		}
	}
	return true
}

func scopeParamMatches(p ScopeParam, raw []byte) bool {
	switch p.Name {
	case "status":
		st := gjson.GetBytes(raw, "status")
		if st.Type != gjson.String {
			return false
		}
		for _, v := range p.Values {
			if st.Str == v {
				return true
			}
		}
		return false
	case "category", "code":
		return codingsMatch(gjson.GetBytes(raw, p.Name), true, p.Values)
	case "_tag":
		return codingsMatch(gjson.GetBytes(raw, "meta.tag"), false, p.Values)
	case "_security":
		return codingsMatch(gjson.GetBytes(raw, "meta.security"), false, p.Values)
	}
	return false
}

// codingsMatch reports whether v (a CodeableConcept, a Coding, or an array
// of either) holds a coding matching one of the token values.
func codingsMatch(v gjson.Result, concept bool, values []string) bool {
	found := false
	each := func(coding gjson.Result) {
		if found || !coding.IsObject() {
			return
		}
		sys, code := coding.Get("system"), coding.Get("code")
		for _, tv := range values {
			if tokenMatches(tv, sys, code) {
				found = true
				return
			}
		}
	}
	visit := func(x gjson.Result) {
		if concept {
			for _, c := range x.Get("coding").Array() {
				each(c)
			}
		} else {
			each(x)
		}
	}
	if v.IsArray() {
		for _, x := range v.Array() {
			visit(x)
		}
	} else if v.IsObject() {
		visit(v)
	}
	return found
}

// tokenMatches applies FHIR token search semantics to one coding:
// "system|code", "|code" (no system), "code" (any system), "system|" (any
// code of the system).
func tokenMatches(tv string, sys, code gjson.Result) bool {
	system, c, hasBar := strings.Cut(tv, "|")
	if !hasBar {
		return code.Type == gjson.String && code.Str == tv
	}
	if system == "" {
		return !sys.Exists() && code.Type == gjson.String && code.Str == c
	}
	if sys.Type != gjson.String || sys.Str != system {
		return false
	}
	return c == "" || code.Type == gjson.String && code.Str == c
}

// String describes the check for Explain.
func (c *ResourceCheck) String() string {
	if c == nil {
		return "none"
	}
	s := "every returned resource must be readable under a granted scope (type and granular query)"
	if c.patient != "" {
		s += fmt.Sprintf(" and in the compartment of Patient/%s (or be reference data)", c.patient)
	}
	return s + "; a failing top-level resource refuses the response, failing entries are dropped"
}
