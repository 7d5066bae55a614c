package policy

import (
	"errors"
	"net/url"
	"strings"

	"github.com/fhirwall/fhirwall/fhir"
)

// Subject is who asks, as far as authorization cares: the agent, its
// effective scopes (see MapScopes), the token's patient claim and the
// operations its roles allow.
type Subject struct {
	AgentID string
	Scopes  ScopeSet
	// Patient is the token's patient claim (the launch context). patient/
	// scopes need it; without it every request is refused.
	Patient string
	// Operations are the operation names the agent's roles allow, with or
	// without "$" ("$everything", "validate").
	Operations []string
}

// QueryParam is one search parameter that the gateway must add to the
// request before forwarding it.
type QueryParam struct {
	Name  string
	Value string
}

// Decision is the outcome of Decide for one request.
//
// When Allow is false the request must not reach the upstream; Err gives
// the error to answer with and Reason the code to audit. When Allow is
// true the gateway must, in this order: refuse if it cannot apply what the
// Decision asks (fail closed); add Narrowing to the query (for a
// conditional create, to the If-None-Exist criteria); run the Prefetch
// check if asked; forward; then pass every returned resource through Check
// and drop Bundle.total when HideTotal is set.
type Decision struct {
	Allow bool
	// Reason is the stable code of a refusal, for the OperationOutcome,
	// the AuditEvent and metrics; empty when allowed.
	Reason fhir.Reason
	// Detail explains the refusal to the agent; it names scopes, types and
	// parameters, never PHI.
	Detail string
	// Interaction and ResourceType echo the classified request.
	Interaction  fhir.Interaction
	ResourceType string
	// Matched are the scopes (canonical form) that granted the request.
	Matched []string
	// Narrowing are search parameters to append (AND) before forwarding:
	// the patient compartment link under patient/ scopes
	// (subject=Patient/123) and the granular scope query (category=...).
	Narrowing []QueryParam
	// Patient is the token patient the request is confined to, under
	// patient/ scopes.
	Patient string
	// Check must see every resource of the response (nil only for
	// capabilities). It is the second line behind Narrowing: it drops
	// included, contained-in-results and other out-of-compartment entries.
	Check *ResourceCheck
	// Prefetch asks the gateway, before forwarding a write addressed by
	// id, to read the current resource upstream and run Check on it: an
	// update, patch or delete must not touch a resource the agent could not
	// read (another patient's, another category). A failing or missing
	// resource is answered like a refused read (404 not-found, see Err);
	// update-as-create is therefore not offered through a prefetched
	// update, since 201 against 404 would disclose whether the id exists
	// elsewhere. The write should carry If-Match with the version read, so
	// nothing changes between the check and the write.
	Prefetch bool
	// NotFoundOnRefusal means an existence oracle is possible: a refused
	// check and an upstream 404 or 410 must produce the very same answer
	// (Err's 404 not-found OperationOutcome, no upstream body).
	NotFoundOnRefusal bool
	// HideTotal asks for Bundle.total to be removed: Check may drop search
	// matches, so the upstream's count would disclose them.
	HideTotal bool
	// EntryDecisions are the per-entry decisions of a batch or
	// transaction, in entry order. A refused batch entry must not be
	// forwarded: it is answered with its own OperationOutcome (Err) in the
	// response Bundle. Allowed entries carry their own Narrowing (apply
	// with NarrowURL to request.url) and Prefetch. A transaction with a
	// refused entry is refused whole. In the batch-response, an entry whose
	// resource Check drops must read like a missing one (404 not-found),
	// or the batch becomes an existence oracle.
	EntryDecisions []Decision
}

// Err is the error to answer a refused request with, or nil when allowed.
// When NotFoundOnRefusal is set it is a plain not-found, identical to the
// answer for a resource that does not exist; audit Reason instead.
func (d Decision) Err() error {
	if d.Allow {
		return nil
	}
	if d.NotFoundOnRefusal {
		return fhir.Errorf(fhir.ReasonNotFound, "")
	}
	return fhir.Errorf(d.Reason, "%s", d.Detail)
}

// CheckRefusal is the error to answer with when the response check refused
// an allowed request (a CheckRefuse verdict, or a Prefetch that failed or
// found nothing): not-found when NotFoundOnRefusal, so that the answer
// equals the one for a missing resource; compartment-violation otherwise.
// The audit records compartment-violation in both cases.
func (d Decision) CheckRefusal() error {
	if d.NotFoundOnRefusal {
		return fhir.Errorf(fhir.ReasonNotFound, "")
	}
	return fhir.Errorf(fhir.ReasonCompartmentViolation, "the response holds a resource this agent may not see")
}

// NarrowQuery returns rawQuery with Narrowing appended, encoded for the
// upstream. Values are escaped as search values (commas inside one value
// are backslash-escaped so they cannot split it).
func (d Decision) NarrowQuery(rawQuery string) string {
	var b strings.Builder
	b.WriteString(rawQuery)
	for _, p := range d.Narrowing {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.Name))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.Value))
	}
	return b.String()
}

// NarrowURL applies Narrowing to a relative or absolute URL with an
// optional query, such as a batch entry's request.url.
func (d Decision) NarrowURL(u string) string {
	if len(d.Narrowing) == 0 {
		return u
	}
	path, query, _ := strings.Cut(u, "?")
	return path + "?" + d.NarrowQuery(query)
}

// Decide authorizes one classified request for a subject. It is a pure
// function of its inputs: no I/O, no clock, safe for concurrent use (the
// returned Check is the caller's alone).
//
// Default deny: an interaction, type, operation or parameter that no scope
// permits is refused. Refusals:
//   - scope-context-mixed: the token mixes patient/ with user/ or system/;
//   - patient-context-missing: patient/ scopes without a valid patient id;
//   - scope-missing: no scope grants the letter on the type, or a join
//     (_include, _revinclude, _has, chain, _contained) reaches a type the
//     agent cannot read;
//   - compartment-violation: a patient/ request that leaves the patient's
//     compartment (another patient's compartment search, a write whose
//     patient references point elsewhere, a patch of a compartment link);
//   - operation-denied: an operation no role allows;
//   - format-not-acceptable: a non-JSON _format;
//   - request-invalid: an _elements list that strips what the response
//     check must read (compartment links, granular elements);
//   - interaction-unsupported: an interaction Decide does not know;
//   - the classification error of a batch entry, for that entry.
func Decide(s *Subject, req *fhir.Request) Decision {
	if s == nil || req == nil {
		return denyDecision(fhir.ReasonScopeMissing, "no subject or request")
	}
	set := s.Scopes
	switch {
	case set.ContextMixed():
		return denyDecision(fhir.ReasonScopeContextMixed, "the token mixes patient/ with user/ or system/ scopes")
	case set.Len() == 0:
		return denyDecision(fhir.ReasonScopeMissing, "no SMART scope is granted")
	}
	d := decider{set: set}
	if set.PatientContext() {
		if !fhir.ValidID(s.Patient) {
			return denyDecision(fhir.ReasonPatientContext, "patient/ scopes need the token's patient claim")
		}
		d.patient = s.Patient
	}
	d.ops = s.Operations
	return d.decide(req, true)
}

// decider carries what every sub-decision needs.
type decider struct {
	set     ScopeSet
	patient string // "" unless patient/ scopes
	ops     []string
}

func denyDecision(reason fhir.Reason, format string, args ...any) Decision {
	return Decision{Reason: reason, Detail: fhir.Errorf(reason, format, args...).Detail}
}

func (d *decider) decide(req *fhir.Request, top bool) Decision {
	var out Decision
	switch i := req.Interaction; {
	case i == fhir.InteractionCapabilities:
		out = Decision{Allow: true}
		if r := formatRefusal(req); r != nil {
			out = *r
		}
	case i == fhir.InteractionRead || i == fhir.InteractionVRead || i == fhir.InteractionHistoryInstance:
		out = d.read(req)
	case i.IsSearch() || i == fhir.InteractionHistoryType || i == fhir.InteractionHistorySystem:
		out = d.search(req)
	case i == fhir.InteractionCreate || i == fhir.InteractionUpdate || i == fhir.InteractionPatch || i == fhir.InteractionDelete:
		out = d.write(req)
	case i == fhir.InteractionOperation:
		out = d.operation(req)
	case (i == fhir.InteractionBatch || i == fhir.InteractionTransaction) && top:
		out = d.bundle(req)
	default:
		out = denyDecision(fhir.ReasonNotSupported, "interaction %s is not supported here", i)
	}
	out.Interaction, out.ResourceType = req.Interaction, req.ResourceType
	if d.patient != "" {
		out.Patient = d.patient
	}
	if !out.Allow {
		out.Check, out.Narrowing, out.Prefetch = nil, nil, false
	}
	return out
}

// newCheck returns a response check for this subject.
func (d *decider) newCheck(containers bool, perms Perm) *ResourceCheck {
	return &ResourceCheck{scopes: d.set, patient: d.patient, containers: containers, perms: perms}
}

// grant returns the canonical names of the scopes granting perm on t.
func (d *decider) grant(t string, perm Perm) []string {
	var out []string
	for _, s := range d.set.scopes {
		if s.Perms&perm == perm && s.coversType(t) {
			out = append(out, s.canonical())
		}
	}
	return out
}

// read decides read, vread and history-instance.
func (d *decider) read(req *fhir.Request) Decision {
	t := req.ResourceType
	matched := d.grant(t, PermRead)
	if len(matched) == 0 {
		return denyDecision(fhir.ReasonScopeMissing, "no scope grants read on %s", t)
	}
	if r := formatRefusal(req); r != nil {
		return *r
	}
	if len(req.PullIns.Elements) > 0 {
		if r := d.elementsRefusal(req, []string{t}, PermRead); r != nil {
			return *r
		}
	}
	history := req.Interaction == fhir.InteractionHistoryInstance
	out := Decision{Allow: true, Matched: matched, NotFoundOnRefusal: true}
	if r := d.instanceOutsidePatient(t, req.ID); r != nil {
		return *r
	}
	// A history Bundle holds old versions, each checked on its own: an old
	// version may sit in another patient's compartment.
	out.Check = d.newCheck(history, PermRead)
	return out
}

// formatRefusal refuses a _format the gateway cannot filter.
func formatRefusal(req *fhir.Request) *Decision {
	switch req.Format {
	case "", "json", "application/json", "application/fhir+json":
		return nil
	}
	dd := denyDecision(fhir.ReasonNotAcceptable, "_format=%s cannot be filtered; only JSON is served", req.Format)
	return &dd
}

func decideAsFHIRError(err error, target **fhir.Error) bool {
	return errors.As(err, target)
}

// instanceOutsidePatient refuses, under patient/ scopes, an instance that
// is known to be outside the token patient's reach before asking upstream:
// a type in no compartment that is not reference data, or another Patient
// (answered like a missing resource all the same). nil when allowed or not
// under patient/ scopes.
func (d *decider) instanceOutsidePatient(t, id string) *Decision {
	if d.patient == "" {
		return nil
	}
	if !patientReachable(t) {
		dd := denyDecision(fhir.ReasonCompartmentViolation, "%s is in no patient compartment and is not reference data", t)
		return &dd
	}
	if t == "Patient" && id != d.patient {
		dd := denyDecision(fhir.ReasonCompartmentViolation, "the Patient addressed is not the token's patient")
		dd.NotFoundOnRefusal = true
		return &dd
	}
	return nil
}
