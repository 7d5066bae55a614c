package policy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

var authzClassifier = fhir.Classifier{Bases: []string{"https://gw.example.org/fhir"}}

type decideCase struct {
	name        string
	scopes      []string
	patient     string
	ops         []string
	method      string
	path, query string
	header      map[string]string
	body        string
	// want
	allow     bool
	reason    fhir.Reason
	narrowing string // "a=b&c=d" as NarrowQuery("") gives it
	prefetch  bool
	notFound  bool
	hideTotal bool
}

func runDecide(t *testing.T, tc decideCase) (Decision, *fhir.Request) {
	t.Helper()
	h := http.Header{}
	for k, v := range tc.header {
		h.Set(k, v)
	}
	if tc.body != "" && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/fhir+json")
	}
	req, err := authzClassifier.Classify(tc.method, tc.path, tc.query, h, []byte(tc.body))
	if err != nil {
		t.Fatalf("Classify: %v", err)
	}
	s := &Subject{AgentID: "agent-1", Scopes: authzScopes(t, tc.scopes...), Patient: tc.patient, Operations: tc.ops}
	return Decide(s, req), req
}

func checkDecision(t *testing.T, tc decideCase, d Decision, req *fhir.Request) {
	t.Helper()
	if d.Allow != tc.allow || d.Reason != tc.reason {
		t.Fatalf("allow=%v reason=%q detail=%q; want allow=%v reason=%q\n%s", d.Allow, d.Reason, d.Detail, tc.allow, tc.reason, Explain(d, req))
	}
	if got := d.NarrowQuery(""); got != tc.narrowing {
		t.Errorf("narrowing %q, want %q", got, tc.narrowing)
	}
	if d.Prefetch != tc.prefetch || d.NotFoundOnRefusal != tc.notFound || d.HideTotal != tc.hideTotal {
		t.Errorf("prefetch=%v notFound=%v hideTotal=%v; want %v %v %v", d.Prefetch, d.NotFoundOnRefusal, d.HideTotal, tc.prefetch, tc.notFound, tc.hideTotal)
	}
	if d.Allow && d.Check == nil && req.Interaction != fhir.InteractionCapabilities {
		t.Errorf("allowed without a response check")
	}
	if !d.Allow && (d.Check != nil || len(d.Narrowing) > 0) {
		t.Errorf("a refusal carries a check or narrowing")
	}
	if err := d.Err(); (err == nil) != d.Allow {
		t.Errorf("Err() = %v for allow=%v", err, d.Allow)
	} else if err != nil && d.NotFoundOnRefusal && fhir.ReasonOf(err) != fhir.ReasonNotFound {
		t.Errorf("Err() = %v, want not-found", err)
	}
}

const (
	authzPatient = "123"
	authzObsLab  = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
)

func TestDecideInteractions(t *testing.T) {
	tests := []decideCase{
		// Default deny and subject problems.
		{name: "no scopes", method: "GET", path: "/Patient/1", reason: fhir.ReasonScopeMissing},
		{name: "mixed contexts", scopes: []string{"patient/Observation.rs", "system/Claim.rs"}, patient: authzPatient, method: "GET", path: "/Claim/1", reason: fhir.ReasonScopeContextMixed},
		{name: "patient scope without patient", scopes: []string{"patient/Observation.rs"}, method: "GET", path: "/Observation/1", reason: fhir.ReasonPatientContext},
		{name: "patient scope with invalid patient", scopes: []string{"patient/Observation.rs"}, patient: "a/b", method: "GET", path: "/Observation/1", reason: fhir.ReasonPatientContext},
		{name: "capabilities in xml", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/metadata", query: "_format=xml", reason: fhir.ReasonNotAcceptable},
		{name: "capabilities", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/metadata", allow: true},

		// Reads.
		{name: "read allowed", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/Claim/1", allow: true, notFound: true},
		{name: "read other type", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/Patient/1", reason: fhir.ReasonScopeMissing},
		{name: "read needs r not s", scopes: []string{"system/Claim.s"}, method: "GET", path: "/Claim/1", reason: fhir.ReasonScopeMissing},
		{name: "vread", scopes: []string{"user/*.read"}, method: "GET", path: "/Claim/1/_history/3", allow: true, notFound: true},
		{name: "history instance", scopes: []string{"user/Claim.r"}, method: "GET", path: "/Claim/1/_history", allow: true, notFound: true},
		{name: "patient read in compartment type", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation/9", allow: true, notFound: true},
		{name: "patient read own patient", scopes: []string{"patient/Patient.r"}, patient: authzPatient, method: "GET", path: "/Patient/123", allow: true, notFound: true},
		{name: "patient read other patient is a not-found", scopes: []string{"patient/Patient.r"}, patient: authzPatient, method: "GET", path: "/Patient/999", reason: fhir.ReasonCompartmentViolation, notFound: true},
		{name: "patient read reference data", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Medication/5", allow: true, notFound: true},
		{name: "patient read non-compartment type", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Task/5", reason: fhir.ReasonCompartmentViolation},
		{name: "patient read with _elements hiding the link", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation/1", query: "_elements=code", reason: fhir.ReasonRequestInvalid},
		{name: "xml format refused", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/Claim/1", query: "_format=xml", reason: fhir.ReasonNotAcceptable},

		// Searches.
		{name: "search type", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/Claim", query: "status=active", allow: true},
		{name: "search needs s", scopes: []string{"system/Claim.r"}, method: "GET", path: "/Claim", reason: fhir.ReasonScopeMissing},
		{name: "post search", scopes: []string{"system/Claim.rs"}, method: "POST", path: "/Claim/_search", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "status=active", allow: true},
		{name: "patient search narrowed", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "code=x", allow: true, narrowing: "subject=Patient%2F123"},
		{name: "patient search of patients narrowed by id", scopes: []string{"patient/Patient.rs"}, patient: authzPatient, method: "GET", path: "/Patient", allow: true, narrowing: "_id=123"},
		{name: "patient search of another patient by id", scopes: []string{"patient/Patient.rs"}, patient: authzPatient, method: "GET", path: "/Patient", query: "_id=999", reason: fhir.ReasonCompartmentViolation},
		{name: "patient search encounter uses patient param", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Encounter", allow: true, narrowing: "patient=Patient%2F123"},
		{name: "patient search naming other patient", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "subject=Patient/999", reason: fhir.ReasonCompartmentViolation},
		{name: "patient search naming other patient by id", scopes: []string{"patient/Encounter.rs"}, patient: authzPatient, method: "GET", path: "/Encounter", query: "patient=999", reason: fhir.ReasonCompartmentViolation},
		{name: "patient search naming own patient", scopes: []string{"patient/Encounter.rs"}, patient: authzPatient, method: "GET", path: "/Encounter", query: "patient=123", allow: true, narrowing: "patient=Patient%2F123"},
		{name: "patient search with bare id on narrowing param", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "subject=999", reason: fhir.ReasonCompartmentViolation},
		{name: "patient search with own bare id", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "subject=123", allow: true, narrowing: "subject=Patient%2F123"},
		{name: "patient search with modifier on narrowing param", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "subject:missing=true", reason: fhir.ReasonCompartmentViolation},
		// Observation's patient parameter is not one of its compartment
		// parameters (subject, performer), but it names a patient all
		// the same: another patient is refused, as through subject.
		{name: "patient search naming other patient through a non-compartment patient param", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "patient=Patient/999", reason: fhir.ReasonCompartmentViolation},
		{name: "patient search naming other patient by bare id through patient param", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "patient=999", reason: fhir.ReasonCompartmentViolation},
		{name: "patient search naming own patient through patient param", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "patient=123", allow: true, narrowing: "subject=Patient%2F123"},
		{name: "patient search with OR list naming another", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "subject=Patient/123,Patient/999", reason: fhir.ReasonCompartmentViolation},
		{name: "granular param repeated by agent hides total", scopes: []string{"user/Observation.rs?category=laboratory"}, method: "GET", path: "/Observation", query: "category=vital-signs", allow: true, narrowing: "category=laboratory", hideTotal: true},
		{name: "patient search reference data not narrowed", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Practitioner", query: "name=x", allow: true},
		{name: "patient search non-compartment type", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Task", reason: fhir.ReasonCompartmentViolation},
		{name: "compartment search own", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Patient/123/Observation", allow: true},
		{name: "compartment search other patient", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Patient/999/Observation", reason: fhir.ReasonCompartmentViolation},
		{name: "compartment search practitioner under patient scope", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Practitioner/1/Observation", reason: fhir.ReasonCompartmentViolation},
		{name: "compartment search all types needs wildcard", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Patient/123/*", reason: fhir.ReasonScopeMissing},
		{name: "compartment search all types", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Patient/123/*", allow: true},
		{name: "system search by type", scopes: []string{"user/Observation.rs", "user/Condition.rs"}, method: "GET", path: "/", query: "_type=Observation,Condition", allow: true},
		{name: "system search type not granted", scopes: []string{"user/Observation.rs"}, method: "GET", path: "/", query: "_type=Observation,Condition", reason: fhir.ReasonScopeMissing},
		{name: "system search without _type needs wildcard", scopes: []string{"user/Observation.rs"}, method: "GET", path: "/", query: "name=x", reason: fhir.ReasonScopeMissing},
		{name: "system search wildcard", scopes: []string{"user/*.rs"}, method: "GET", path: "/", query: "_lastUpdated=gt2020", allow: true},
		{name: "patient system search refused", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/", query: "_type=Observation", reason: fhir.ReasonCompartmentViolation},
		{name: "history type", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/Claim/_history", allow: true},
		{name: "patient history type refused", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation/_history", reason: fhir.ReasonCompartmentViolation},
		{name: "history system needs wildcard", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/_history", reason: fhir.ReasonScopeMissing},
		{name: "summary count with search", scopes: []string{"system/Claim.rs"}, method: "GET", path: "/Claim", query: "_summary=count", allow: true},
		{name: "summary count without search", scopes: []string{"system/Claim.r"}, method: "GET", path: "/Claim", query: "_summary=count", reason: fhir.ReasonScopeMissing},

		// Granular scopes.
		{name: "granular search narrowed", scopes: []string{authzObsLab}, patient: authzPatient, method: "GET", path: "/Observation", allow: true,
			narrowing: "subject=Patient%2F123&category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory"},
		{name: "granular scopes OR into one param", scopes: []string{"user/Observation.rs?category=laboratory", "user/Observation.rs?category=vital-signs"}, method: "GET", path: "/Observation", allow: true,
			narrowing: "category=laboratory%2Cvital-signs"},
		{name: "granular with plain scope not narrowed", scopes: []string{"user/Observation.rs?category=laboratory", "user/Observation.rs"}, method: "GET", path: "/Observation", allow: true},
		{name: "granular different params: check only, total hidden", scopes: []string{"user/Observation.rs?category=laboratory", "user/Observation.rs?code=x"}, method: "GET", path: "/Observation", allow: true, hideTotal: true},
		{name: "granular inexact refuses count", scopes: []string{"user/Observation.rs?category=laboratory", "user/Observation.rs?code=x"}, method: "GET", path: "/Observation", query: "_summary=count", reason: fhir.ReasonScopeMissing},
		{name: "granular system search hides total", scopes: []string{"user/Observation.rs?category=laboratory", "user/Condition.rs"}, method: "GET", path: "/", query: "_type=Observation,Condition", allow: true, hideTotal: true},
		{name: "granular history hides total", scopes: []string{"user/Observation.rs?category=laboratory"}, method: "GET", path: "/Observation/_history", allow: true, hideTotal: true},
		{name: "granular compartment search all types hides total", scopes: []string{"user/*.rs", "user/Observation.rs?category=laboratory"}, method: "GET", path: "/Patient/1/*", allow: true, hideTotal: true},
		{name: "plain system search keeps total", scopes: []string{"user/Observation.rs", "user/Condition.rs"}, method: "GET", path: "/", query: "_type=Observation,Condition", allow: true},
		{name: "granular read: check with not-found", scopes: []string{authzObsLab}, patient: authzPatient, method: "GET", path: "/Observation/1", allow: true, notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, req := runDecide(t, tc)
			checkDecision(t, tc, d, req)
		})
	}
}

// TestDecideBypasses covers the known bypass classes: joins that leak,
// oracles, smuggling in batches, operations, conditional writes and
// compartment escapes through writes.
func TestDecideBypasses(t *testing.T) {
	obsBody := func(subject string) string {
		return `{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"` + subject + `"}}`
	}
	tests := []decideCase{
		// _include / _revinclude / :iterate leaks.
		{name: "include readable target", scopes: []string{"patient/Observation.rs", "patient/Patient.rs"}, patient: authzPatient, method: "GET", path: "/Observation",
			query: "_include=Observation:subject:Patient", allow: true, narrowing: "subject=Patient%2F123"},
		{name: "include unreadable target", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation",
			query: "_include=Observation:subject:Patient", reason: fhir.ReasonScopeMissing},
		{name: "include without target type", scopes: []string{"patient/Observation.rs", "patient/Patient.rs"}, patient: authzPatient, method: "GET", path: "/Observation",
			query: "_include=Observation:subject", reason: fhir.ReasonScopeMissing},
		// Type:param without a target: every type R4 lets that parameter
		// point to must be readable (Observation.subject: Device, Group,
		// Location, Patient; Claim.patient: Patient).
		{name: "include without target, single-target parameter", scopes: []string{"user/Claim.rs", "user/Patient.rs"}, method: "GET", path: "/Claim",
			query: "_include=Claim:patient", allow: true},
		{name: "include without target, target unreadable", scopes: []string{"user/Claim.rs"}, method: "GET", path: "/Claim",
			query: "_include=Claim:patient", reason: fhir.ReasonScopeMissing},
		{name: "include without target, every target readable", scopes: []string{"user/Observation.rs", "user/Patient.rs", "user/Group.rs", "user/Device.rs", "user/Location.rs"},
			method: "GET", path: "/Observation", query: "_include=Observation:subject", allow: true},
		{name: "include without target, one target unreadable", scopes: []string{"user/Observation.rs", "user/Patient.rs", "user/Group.rs", "user/Device.rs"},
			method: "GET", path: "/Observation", query: "_include=Observation:subject", reason: fhir.ReasonScopeMissing},
		{name: "include without target, not a reference parameter", scopes: []string{"user/Observation.rs", "user/Patient.rs"}, method: "GET", path: "/Observation",
			query: "_include=Observation:code", reason: fhir.ReasonScopeMissing},
		{name: "include without target, any-type parameter", scopes: []string{"user/Provenance.rs", "user/Patient.rs"}, method: "GET", path: "/Provenance",
			query: "_include=Provenance:target", reason: fhir.ReasonScopeMissing},
		{name: "include without target, any-type parameter, wildcard read", scopes: []string{"user/*.rs"}, method: "GET", path: "/Provenance",
			query: "_include=Provenance:target", allow: true},
		{name: "include wildcard", scopes: []string{"user/Observation.rs"}, method: "GET", path: "/Observation", query: "_include=*", reason: fhir.ReasonScopeMissing},
		{name: "include wildcard with wildcard read", scopes: []string{"user/*.rs"}, method: "GET", path: "/Observation", query: "_include=*", allow: true},
		{name: "include iterate to unreadable", scopes: []string{"user/Observation.rs", "user/Patient.rs"}, method: "GET", path: "/Observation",
			query: "_include=Observation:subject:Patient&_include:iterate=Patient:general-practitioner:Practitioner", reason: fhir.ReasonScopeMissing},
		{name: "include to non-compartment type under patient scope", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Observation",
			query: "_include=Observation:based-on:CarePlan&_include=Observation:focus:Task", reason: fhir.ReasonScopeMissing},
		{name: "revinclude unreadable source", scopes: []string{"user/Patient.rs"}, method: "GET", path: "/Patient", query: "_revinclude=Provenance:target", reason: fhir.ReasonScopeMissing},
		{name: "revinclude readable", scopes: []string{"user/Patient.rs", "user/Provenance.r"}, method: "GET", path: "/Patient", query: "_revinclude=Provenance:target", allow: true},
		{name: "revinclude iterate wildcard", scopes: []string{"user/Patient.rs"}, method: "GET", path: "/Patient", query: "_revinclude:iterate=*", reason: fhir.ReasonScopeMissing},

		// _has and chain oracles.
		{name: "_has on unreadable type", scopes: []string{"user/Patient.rs"}, method: "GET", path: "/Patient", query: "_has:Observation:patient:code=1234-5", reason: fhir.ReasonScopeMissing},
		{name: "_has on readable type", scopes: []string{"user/Patient.rs", "user/Observation.s"}, method: "GET", path: "/Patient", query: "_has:Observation:patient:code=1234-5", allow: true},
		{name: "_has through granular scope", scopes: []string{"user/Patient.rs", "user/Observation.rs?category=vital-signs"}, method: "GET", path: "/Patient", query: "_has:Observation:patient:code=1234-5", reason: fhir.ReasonScopeMissing},
		{name: "nested _has second hop unreadable", scopes: []string{"user/Patient.rs", "user/Observation.s"}, method: "GET", path: "/Patient", query: "_has:Observation:patient:_has:AuditEvent:entity:agent=x", reason: fhir.ReasonScopeMissing},
		{name: "_has under patient scope", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Patient", query: "_has:Observation:patient:code=1", reason: fhir.ReasonCompartmentViolation},
		{name: "_has in POST body", scopes: []string{"user/Patient.rs"}, method: "POST", path: "/Patient/_search", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "name=x&_has:Observation:patient:code=1", reason: fhir.ReasonScopeMissing},
		{name: "chain to unreadable type", scopes: []string{"user/Observation.rs"}, method: "GET", path: "/Observation", query: "subject:Patient.name=Smith", reason: fhir.ReasonScopeMissing},
		{name: "chain to readable type", scopes: []string{"user/Observation.rs", "user/Patient.s"}, method: "GET", path: "/Observation", query: "subject:Patient.name=Smith", allow: true},
		{name: "untyped chain", scopes: []string{"user/Observation.rs", "user/Patient.s"}, method: "GET", path: "/Observation", query: "subject.name=Smith", reason: fhir.ReasonScopeMissing},
		{name: "untyped chain with wildcard", scopes: []string{"user/*.rs"}, method: "GET", path: "/Observation", query: "subject.name=Smith", allow: true},
		{name: "chain under patient scope to patient", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "subject:Patient.name=Smith", reason: fhir.ReasonCompartmentViolation},
		{name: "chain under patient scope to reference data", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "performer:Practitioner.name=Jones", allow: true, narrowing: "subject=Patient%2F123"},
		{name: "_has with chained target", scopes: []string{"user/Patient.rs", "user/Observation.s"}, method: "GET", path: "/Patient", query: "_has:Observation:subject:performer:Practitioner.name=x", reason: fhir.ReasonScopeMissing},
		{name: "_has with untyped chained target", scopes: []string{"user/Patient.rs", "user/Observation.s", "user/Practitioner.s"}, method: "GET", path: "/Patient", query: "_has:Observation:subject:performer.name=x", reason: fhir.ReasonScopeMissing},
		{name: "_has with typed chained target", scopes: []string{"user/Patient.rs", "user/Observation.s", "user/Practitioner.s"}, method: "GET", path: "/Patient", query: "_has:Observation:subject:performer:Practitioner.name=x", allow: true},
		{name: "_filter chains anywhere", scopes: []string{"user/Observation.rs"}, method: "GET", path: "/Observation", query: "_filter=subject.name%20eq%20x", reason: fhir.ReasonScopeMissing},
		{name: "_filter with unrestricted wildcard", scopes: []string{"user/*.rs"}, method: "GET", path: "/Observation", query: "_filter=status%20eq%20final", allow: true},
		{name: "_query is server-defined", scopes: []string{"user/Observation.rs"}, method: "GET", path: "/Observation", query: "_query=everything", reason: fhir.ReasonScopeMissing},
		{name: "_list needs List", scopes: []string{"user/Observation.rs"}, method: "GET", path: "/Observation", query: "_list=42", reason: fhir.ReasonScopeMissing},
		{name: "_list with List", scopes: []string{"user/Observation.rs", "user/List.r"}, method: "GET", path: "/Observation", query: "_list=42", allow: true},
		{name: "_list under patient scope", scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "_list=42", reason: fhir.ReasonCompartmentViolation},
		{name: "_elements dropping the compartment link", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "_elements=code,value", reason: fhir.ReasonRequestInvalid},
		{name: "_elements keeping the compartment link", scopes: []string{"patient/Observation.rs"}, patient: authzPatient, method: "GET", path: "/Observation", query: "_elements=code,subject", allow: true, narrowing: "subject=Patient%2F123"},
		{name: "_elements dropping a granular element", scopes: []string{"user/Observation.rs?category=laboratory"}, method: "GET", path: "/Observation", query: "_elements=code", reason: fhir.ReasonRequestInvalid},
		{name: "contained results", scopes: []string{"user/Observation.rs"}, method: "GET", path: "/Observation", query: "_contained=true", reason: fhir.ReasonScopeMissing},

		// Batch and transaction smuggling.
		{name: "transaction with a smuggled type", scopes: []string{"system/Claim.cruds"}, method: "POST", path: "/",
			body:   `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Claim/1"}},{"request":{"method":"GET","url":"Patient/1"}}]}`,
			reason: fhir.ReasonScopeMissing},
		{name: "transaction with a foreign absolute URL", scopes: []string{"system/Claim.cruds"}, method: "POST", path: "/",
			body:   `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"https://evil.example.org/fhir/Claim/1"}}]}`,
			reason: fhir.ReasonRequestInvalid},
		{name: "transaction with our absolute URL", scopes: []string{"system/Claim.cruds"}, method: "POST", path: "/",
			body:  `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"https://gw.example.org/fhir/Claim/1"}}]}`,
			allow: true, hideTotal: true},
		{name: "batch is allowed, entries decided", scopes: []string{"system/Claim.cruds"}, method: "POST", path: "/",
			body:  `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Claim/1"}},{"request":{"method":"GET","url":"Patient/1"}}]}`,
			allow: true, hideTotal: true},
		{name: "transaction with compartment escape", scopes: []string{"patient/Observation.cruds"}, patient: authzPatient, method: "POST", path: "/",
			body:   `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Observation"},"resource":` + obsBody("Patient/999") + `}]}`,
			reason: fhir.ReasonCompartmentViolation},

		// Operations.
		{name: "operation not allowed", scopes: []string{"user/*.*"}, method: "GET", path: "/Patient/1/$everything", reason: fhir.ReasonOperationDenied},
		{name: "everything allowed", scopes: []string{"user/*.rs"}, ops: []string{"$everything"}, method: "GET", path: "/Patient/1/$everything", allow: true, hideTotal: true, notFound: true},
		{name: "everything own patient", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"everything"}, method: "GET", path: "/Patient/123/$everything", allow: true, hideTotal: true, notFound: true},
		{name: "everything other patient", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"everything"}, method: "GET", path: "/Patient/999/$everything", reason: fhir.ReasonCompartmentViolation, notFound: true},
		{name: "everything type level under patient scope", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"everything"}, method: "GET", path: "/Patient/$everything", reason: fhir.ReasonCompartmentViolation},
		{name: "everything _type unreadable", scopes: []string{"user/Patient.rs", "user/Observation.rs"}, ops: []string{"everything"}, method: "GET", path: "/Patient/1/$everything", query: "_type=Observation,Claim", reason: fhir.ReasonScopeMissing},
		{name: "type operation on reference data", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"expand"}, method: "GET", path: "/ValueSet/$expand", query: "url=http://x", allow: true, hideTotal: true},
		{name: "type operation on compartment type under patient scope", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"stats"}, method: "GET", path: "/Observation/$stats", reason: fhir.ReasonCompartmentViolation},
		{name: "system operation needs wildcard", scopes: []string{"system/Claim.rs"}, ops: []string{"meta"}, method: "GET", path: "/$meta", reason: fhir.ReasonScopeMissing},
		{name: "system operation with wildcard", scopes: []string{"system/*.rs"}, ops: []string{"$meta"}, method: "GET", path: "/$meta", allow: true, hideTotal: true},
		{name: "system operation under patient scope", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"meta"}, method: "GET", path: "/$meta", reason: fhir.ReasonCompartmentViolation},
		{name: "instance operation user scope", scopes: []string{"user/Observation.rs"}, ops: []string{"meta"}, method: "GET", path: "/Observation/1/$meta", allow: true, hideTotal: true},
		{name: "instance operation without read", scopes: []string{"user/Observation.s"}, ops: []string{"meta"}, method: "GET", path: "/Observation/1/$meta", reason: fhir.ReasonScopeMissing},
		{name: "instance operation on other Patient", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"meta"}, method: "GET", path: "/Patient/9/$meta", reason: fhir.ReasonCompartmentViolation, notFound: true},
		{name: "instance operation on unreachable type", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"meta"}, method: "GET", path: "/Task/9/$meta", reason: fhir.ReasonCompartmentViolation},
		{name: "everything on Observation", scopes: []string{"user/*.rs"}, ops: []string{"everything"}, method: "GET", path: "/Observation/1/$everything", reason: fhir.ReasonNotSupported},
		{name: "operation with xml format", scopes: []string{"user/*.rs"}, ops: []string{"everything"}, method: "GET", path: "/Patient/1/$everything", query: "_format=application/fhir+xml", reason: fhir.ReasonNotAcceptable},
		{name: "instance operation prefetched under patient scope", scopes: []string{"patient/*.rs"}, patient: authzPatient, ops: []string{"meta"}, method: "GET", path: "/Observation/1/$meta", allow: true, prefetch: true, notFound: true, hideTotal: true},

		// Writes and conditional writes.
		{name: "create allowed", scopes: []string{"system/Claim.c"}, method: "POST", path: "/Claim", body: `{"resourceType":"Claim"}`, allow: true},
		{name: "create needs c", scopes: []string{"system/Claim.rus"}, method: "POST", path: "/Claim", body: `{"resourceType":"Claim"}`, reason: fhir.ReasonScopeMissing},
		{name: "conditional create needs s", scopes: []string{"system/Claim.c"}, method: "POST", path: "/Claim", header: map[string]string{"If-None-Exist": "identifier=1"}, body: `{"resourceType":"Claim"}`, reason: fhir.ReasonScopeMissing},
		{name: "conditional create", scopes: []string{"system/Claim.cs"}, method: "POST", path: "/Claim", header: map[string]string{"If-None-Exist": "identifier=1"}, body: `{"resourceType":"Claim"}`, allow: true},
		{name: "conditional create with _has oracle", scopes: []string{"system/Claim.cs"}, method: "POST", path: "/Claim", header: map[string]string{"If-None-Exist": "_has:Observation:patient:code=1"}, body: `{"resourceType":"Claim"}`, reason: fhir.ReasonScopeMissing},
		{name: "update", scopes: []string{"system/Claim.u"}, method: "PUT", path: "/Claim/1", body: `{"resourceType":"Claim","id":"1"}`, allow: true},
		{name: "conditional update needs c u s", scopes: []string{"system/Claim.us"}, method: "PUT", path: "/Claim", query: "identifier=1", body: `{"resourceType":"Claim"}`, reason: fhir.ReasonScopeMissing},
		{name: "conditional update", scopes: []string{"system/Claim.cus"}, method: "PUT", path: "/Claim", query: "identifier=1", body: `{"resourceType":"Claim"}`, allow: true},
		{name: "delete", scopes: []string{"system/Claim.d"}, method: "DELETE", path: "/Claim/1", allow: true},
		{name: "conditional delete needs s", scopes: []string{"system/Claim.d"}, method: "DELETE", path: "/Claim", query: "identifier=1", reason: fhir.ReasonScopeMissing},
		{name: "patient conditional delete narrowed", scopes: []string{"patient/Observation.ds"}, patient: authzPatient, method: "DELETE", path: "/Observation", query: "code=1", allow: true, narrowing: "subject=Patient%2F123"},
		{name: "patient create in compartment", scopes: []string{"patient/Observation.c"}, patient: authzPatient, method: "POST", path: "/Observation", body: obsBody("Patient/123"), allow: true},
		{name: "patient create for other patient", scopes: []string{"patient/Observation.c"}, patient: authzPatient, method: "POST", path: "/Observation", body: obsBody("Patient/999"), reason: fhir.ReasonCompartmentViolation},
		{name: "patient create without patient link", scopes: []string{"patient/Observation.c"}, patient: authzPatient, method: "POST", path: "/Observation", body: obsBody("Group/1"), reason: fhir.ReasonCompartmentViolation},
		{name: "patient create with a second patient", scopes: []string{"patient/Observation.c"}, patient: authzPatient, method: "POST", path: "/Observation",
			body: `{"resourceType":"Observation","subject":{"reference":"Patient/123"},"performer":[{"reference":"Patient/999"}]}`, reason: fhir.ReasonCompartmentViolation},
		{name: "patient update moving resource out", scopes: []string{"patient/Observation.u"}, patient: authzPatient, method: "PUT", path: "/Observation/o1", body: obsBody("Patient/999"), reason: fhir.ReasonCompartmentViolation},
		{name: "patient update in compartment is prefetched", scopes: []string{"patient/Observation.u"}, patient: authzPatient, method: "PUT", path: "/Observation/o1", body: obsBody("Patient/123"), allow: true, prefetch: true, notFound: true},
		{name: "patient update of own Patient", scopes: []string{"patient/Patient.u"}, patient: authzPatient, method: "PUT", path: "/Patient/123", body: `{"resourceType":"Patient","id":"123"}`, allow: true},
		{name: "patient update of other Patient", scopes: []string{"patient/Patient.u"}, patient: authzPatient, method: "PUT", path: "/Patient/999", body: `{"resourceType":"Patient","id":"999"}`, reason: fhir.ReasonCompartmentViolation, notFound: true},
		{name: "patient create Patient", scopes: []string{"patient/Patient.c"}, patient: authzPatient, method: "POST", path: "/Patient", body: `{"resourceType":"Patient"}`, reason: fhir.ReasonCompartmentViolation},
		{name: "patient write reference data", scopes: []string{"patient/*.cruds"}, patient: authzPatient, method: "POST", path: "/Medication", body: `{"resourceType":"Medication"}`, reason: fhir.ReasonCompartmentViolation},
		{name: "patient patch of subject", scopes: []string{"patient/Observation.u"}, patient: authzPatient, method: "PATCH", path: "/Observation/o1", header: map[string]string{"Content-Type": "application/json-patch+json"},
			body: `[{"op":"replace","path":"/subject/reference","value":"Patient/999"}]`, reason: fhir.ReasonCompartmentViolation},
		{name: "patient patch moving performer", scopes: []string{"patient/Observation.u"}, patient: authzPatient, method: "PATCH", path: "/Observation/o1", header: map[string]string{"Content-Type": "application/json-patch+json"},
			body: `[{"op":"copy","from":"/performer/0","path":"/note/0"}]`, reason: fhir.ReasonCompartmentViolation},
		{name: "patient patch of status", scopes: []string{"patient/Observation.u"}, patient: authzPatient, method: "PATCH", path: "/Observation/o1", header: map[string]string{"Content-Type": "application/json-patch+json"},
			body: `[{"op":"replace","path":"/status","value":"final"}]`, allow: true, prefetch: true, notFound: true},
		{name: "patient fhirpath patch of unreadable path", scopes: []string{"patient/Observation.u"}, patient: authzPatient, method: "PATCH", path: "/Observation/o1",
			body: `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"%resource.subject"}]}]}`, reason: fhir.ReasonCompartmentViolation},
		{name: "patient delete is prefetched", scopes: []string{"patient/Observation.d"}, patient: authzPatient, method: "DELETE", path: "/Observation/o1", allow: true, prefetch: true, notFound: true},
		{name: "granular create matching", scopes: []string{"user/Observation.c?category=vital-signs"}, method: "POST", path: "/Observation",
			body: `{"resourceType":"Observation","category":[{"coding":[{"code":"vital-signs"}]}]}`, allow: true},
		{name: "granular create not matching", scopes: []string{"user/Observation.c?category=vital-signs"}, method: "POST", path: "/Observation",
			body: `{"resourceType":"Observation","category":[{"coding":[{"code":"laboratory"}]}]}`, reason: fhir.ReasonScopeMissing},
		{name: "granular patch of category", scopes: []string{"user/Observation.u?category=vital-signs"}, method: "PATCH", path: "/Observation/o1", header: map[string]string{"Content-Type": "application/json-patch+json"},
			body: `[{"op":"replace","path":"/category/0/coding/0/code","value":"laboratory"}]`, reason: fhir.ReasonScopeMissing},
		{name: "granular update prefetched", scopes: []string{"user/Observation.u?category=vital-signs"}, method: "PUT", path: "/Observation/o1",
			body: `{"resourceType":"Observation","id":"o1","category":[{"coding":[{"code":"vital-signs"}]}]}`, allow: true, prefetch: true, notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, req := runDecide(t, tc)
			checkDecision(t, tc, d, req)
		})
	}
}

func TestDecideBatchEntries(t *testing.T) {
	tc := decideCase{scopes: []string{"patient/Observation.rs", "patient/Patient.r"}, patient: authzPatient, method: "POST", path: "/",
		body: `{"resourceType":"Bundle","type":"batch","entry":[
		 {"request":{"method":"GET","url":"Observation?code=x"}},
		 {"request":{"method":"GET","url":"Patient/999"}},
		 {"request":{"method":"GET","url":"Claim/1"}},
		 {"request":{"method":"GET","url":"patient/123"}},
		 {"request":{"method":"DELETE","url":"Observation/1"}}]}`}
	d, req := runDecide(t, tc)
	if !d.Allow || len(d.EntryDecisions) != 5 {
		t.Fatalf("batch: %+v", d)
	}
	want := []fhir.Reason{"", fhir.ReasonCompartmentViolation, fhir.ReasonScopeMissing, fhir.ReasonPathInvalid, fhir.ReasonScopeMissing}
	for i, w := range want {
		ed := d.EntryDecisions[i]
		if ed.Allow != (w == "") || ed.Reason != w {
			t.Errorf("entry %d: allow=%v reason=%s, want %s", i, ed.Allow, ed.Reason, w)
		}
	}
	if got := d.EntryDecisions[0].NarrowQuery("code=x"); got != "code=x&subject=Patient%2F123" {
		t.Errorf("entry narrowing %q", got)
	}
	if got := d.EntryDecisions[0].NarrowURL("Observation?code=x"); got != "Observation?code=x&subject=Patient%2F123" {
		t.Errorf("entry URL narrowing %q", got)
	}
	if got := d.EntryDecisions[0].NarrowURL("Observation"); got != "Observation?subject=Patient%2F123" {
		t.Errorf("entry URL narrowing without query %q", got)
	}
	if !d.EntryDecisions[1].NotFoundOnRefusal {
		t.Error("a refused read entry must look like a missing one")
	}
	text := Explain(d, req)
	for _, want := range []string{"entry 1:", "compartment-violation", "subject=Patient/123", "answered as: 404"} {
		if !strings.Contains(text, want) {
			t.Errorf("Explain lacks %q:\n%s", want, text)
		}
	}
}

func TestDecideNilInputs(t *testing.T) {
	if d := Decide(nil, &fhir.Request{}); d.Allow {
		t.Error("nil subject allowed")
	}
	if d := Decide(&Subject{Scopes: authzScopes(t, "user/*.*")}, nil); d.Allow {
		t.Error("nil request allowed")
	}
	// An unclassified (zero) request is refused, not treated as anything.
	if d := Decide(&Subject{Scopes: authzScopes(t, "user/*.*")}, &fhir.Request{}); d.Allow {
		t.Error("zero request allowed")
	}
}

// TestNoExistenceOracle: a refused read (known out of compartment before
// forwarding, or found out by the response check) answers byte for byte
// what a missing resource answers.
func TestNoExistenceOracle(t *testing.T) {
	answer := func(err error) string {
		rec := httptest.NewRecorder()
		fhir.WriteError(rec, err)
		return fmt.Sprintf("%d %s", rec.Code, rec.Body.String())
	}
	missing := answer(fhir.Errorf(fhir.ReasonNotFound, ""))

	early, _ := runDecide(t, decideCase{scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Patient/999"})
	if early.Allow || answer(early.Err()) != missing {
		t.Errorf("early refusal answers %s, missing answers %s", answer(early.Err()), missing)
	}
	late, _ := runDecide(t, decideCase{scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Observation/2"})
	v, _ := late.Check.CheckResource("Observation", []byte(authzObsOther), WhereTopLevel)
	if v != CheckRefuse || !late.NotFoundOnRefusal {
		t.Fatalf("late refusal: verdict %d, notFound %v", v, late.NotFoundOnRefusal)
	}
	if answer(late.CheckRefusal()) != missing {
		t.Errorf("late refusal answers %s", answer(late.CheckRefusal()))
	}
	search, _ := runDecide(t, decideCase{scopes: []string{"patient/*.rs"}, patient: authzPatient, method: "GET", path: "/Observation"})
	if fhir.ReasonOf(search.CheckRefusal()) != fhir.ReasonCompartmentViolation {
		t.Errorf("a search's check refusal: %v", search.CheckRefusal())
	}
}

// TestIncludeWithoutTargetSaysWhatToName: the refusal of Type:param names
// the types the agent cannot read and a form it may use instead.
func TestIncludeWithoutTargetSaysWhatToName(t *testing.T) {
	d, _ := runDecide(t, decideCase{scopes: []string{"user/Observation.rs", "user/Patient.rs"}, method: "GET", path: "/Observation",
		query: "_include=Observation:subject"})
	if d.Allow || !strings.Contains(d.Detail, "Device, Group, Location") || !strings.Contains(d.Detail, "Observation:subject:Patient") {
		t.Errorf("allow=%v detail %q", d.Allow, d.Detail)
	}
	d, _ = runDecide(t, decideCase{scopes: []string{"user/Provenance.rs"}, method: "GET", path: "/Provenance", query: "_include=Provenance:target"})
	if d.Allow || !strings.Contains(d.Detail, "more") {
		t.Errorf("allow=%v detail %q", d.Allow, d.Detail)
	}
}
