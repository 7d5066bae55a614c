package proxy

import (
	"context"
	"strconv"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/guard"
	"github.com/fhirwall/fhirwall/masking"
	"github.com/fhirwall/fhirwall/policy"
)

// authorization is what the gateway enforces for one allowed FHIR request:
// the narrowed query, the mask profiles, the per-resource check of the
// response and whether a refused read must look like a missing one.
type authorization struct {
	narrow        func(rawQuery string) string // adds the decision's narrowing; nil for none
	profiles      []string
	check         masking.Check
	disclosed     *disclosures // nil when no response check runs
	hideExistence bool
	// single: the response is one resource (read, vread, a write's echo),
	// filtered whole so a refusal is a clean answer, never a cut stream.
	single bool
	// decision is the whole decision (batch entries are planned from it).
	decision policy.Decision
	// prefetch, when set, checks the target of a write before it is
	// forwarded (see policy.Decision.Prefetch).
	prefetch *policy.ResourceCheck
}

func (az *authorization) rawQuery(agentQuery string) string {
	if az.narrow == nil {
		return agentQuery
	}
	return az.narrow(agentQuery)
}

// body returns the request body to forward. Narrowing is always added to
// the URL: FHIR servers merge URL and form parameters, so the URL is enough
// to narrow a POST _search too.
func (az *authorization) body(b []byte) []byte { return b }

// summarize adds to the audit record what the response filter saw.
func (az *authorization) summarize(a *audit.Access, sum masking.Summary) {
	refs := auditRefs(sum.Resources)
	if az.disclosed == nil {
		a.Resources = append(a.Resources, refs...)
	}
	for key, n := range sum.Masked {
		profile, path := splitMaskKey(key)
		a.Masks = append(a.Masks, audit.MaskApplied{Profile: profile, Path: path, Count: n})
	}
	if az.disclosed != nil {
		az.disclosed.addResources(refs...)
		az.disclosed.wait()
		az.disclosed.into(a)
	}
	if rc, ok := az.check.(*responseCheck); ok && rc.overBudget > 0 && a.Reason == "" {
		// Allowed, but not everything: the record says what was withheld.
		a.Reason = string(fhir.ReasonPatientBudget)
		a.FailureDetail = strconv.Itoa(rc.overBudget) + " resources withheld by the patient budget"
	}
}

func auditRefs(rs []masking.ResourceRef) []audit.ResourceRef {
	out := make([]audit.ResourceRef, len(rs))
	for i, r := range rs {
		out[i] = audit.ResourceRef{Type: r.Type, ID: r.ID, Version: r.Version}
	}
	return out
}

func splitMaskKey(k string) (profile, path string) {
	for i := 0; i < len(k); i++ {
		if k[i] == ':' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}

// bulkOperations are the operations counted against bulk_calls_per_day.
var bulkOperations = map[string]bool{"everything": true, "export": true}

// shadowAuthorization is what a shadow-mode route forwards with when the
// decision was a refusal: nothing narrowed, nothing checked (the point of
// shadow mode is to see what would break), the agent's masks still applied.
func shadowAuthorization(masks []string) *authorization { return &authorization{profiles: masks} }

// effectiveScopes are the token's scopes mapped through scope_map and cut
// down to the agent's role ceilings.
// They are computed once per request.
func (c *call) effectiveScopes() policy.ScopeSet {
	if c.scopes == nil {
		set, _ := policy.MapScopes(c.principal.Scopes, c.rt.cfg.ScopeMap, c.grant.ceilings)
		c.scopes = &set
	}
	return *c.scopes
}

// mayReadAudit lets through agents whose effective scopes grant
// system/AuditEvent.rs.
func (rt *runtime) mayReadAudit(c *call) error {
	set := c.effectiveScopes()
	if set.Permits(policy.ContextSystem, "AuditEvent", 'r') && set.Permits(policy.ContextSystem, "AuditEvent", 's') {
		return nil
	}
	return fhir.Errorf(fhir.ReasonScopeMissing, "the audit API needs system/AuditEvent.rs")
}

// restAllowed grants a REST request when the agent holds one of the rule's
// scopes: an admin-named scope is held when every SMART scope it maps to is
// within the agent's effective scopes; a SMART scope when it is.
func (rt *runtime) restAllowed(c *call, scopes []string) error {
	return rt.restAllowedBy(c.effectiveScopes(), scopes)
}

func (rt *runtime) restAllowedBy(set policy.ScopeSet, scopes []string) error {
	for _, name := range scopes {
		required, mapped := rt.cfg.ScopeMap[name]
		if !mapped {
			required = []string{name}
		}
		held := len(required) > 0
		for _, r := range required {
			s, err := policy.ParseScope(r)
			if err != nil || !s.IsSMART() || len(s.Query) > 0 || !permitsAll(set, s) {
				held = false
				break
			}
		}
		if held {
			return nil
		}
	}
	return fhir.Errorf(fhir.ReasonScopeMissing, "no granted scope permits this request")
}

func permitsAll(set policy.ScopeSet, s policy.Scope) bool {
	for _, l := range []byte("cruds") {
		if s.Perms&policy.PermOf(l) != 0 && !set.Permits(s.Context, s.ResourceType, l) {
			return false
		}
	}
	return true
}

// responseCheck is the per-resource check of one response: policy's
// decision (type, compartment, granular query) first, then the agent's
// guardrails on what is actually disclosed (distinct patients per hour,
// resources per response). It runs on the filter's goroutine only.
type responseCheck struct {
	ctx        context.Context
	rc         *policy.ResourceCheck
	guard      *guard.Guard
	agent      string
	limits     guard.Limits
	kept       int
	disclosed  *disclosures // patients whose data was let through
	overBudget int          // resources withheld by the patient budget
}

func (a *responseCheck) CheckResource(resourceType string, raw []byte, where masking.Placement) (masking.Verdict, error) {
	v, err := a.rc.CheckValidResource(resourceType, raw, int(where)) // the rewriter validated raw
	if err != nil || v != policy.CheckKeep {
		if v == policy.CheckDrop {
			return masking.Drop, err
		}
		return masking.Refuse, err
	}
	if where == masking.BundleEntry || where == masking.NDJSONLine {
		a.kept++
		if err := a.guard.CheckResources(a.agent, a.kept, a.limits); err != nil {
			return masking.Refuse, err
		}
	}
	fresh := a.rc.DrainPatients()
	if len(fresh) > 0 && a.limits.PatientsPerHour > 0 {
		if err := a.guard.AdmitPatients(a.ctx, a.agent, fresh, a.limits); err != nil {
			// Over budget: the resource is not disclosed. A single
			// resource refuses the response; an entry is dropped.
			if where == masking.TopLevel {
				return masking.Refuse, err
			}
			a.overBudget++
			return masking.Drop, nil
		}
	}
	a.disclosed.addPatients(fresh...)
	return masking.Keep, nil
}

// refusal is an authorization refusal whose answer to the agent may differ
// from the reason audited.
type refusal struct {
	answer error
	reason fhir.Reason
}

func (r *refusal) Error() string { return string(r.reason) }
func (r *refusal) Unwrap() error { return r.answer }

// authorize decides a classified FHIR request for the calling agent. A
// refusal is returned as an error carrying its reason; an allowed request
// gets the authorization to enforce on the way out and back.
func (rt *runtime) authorize(c *call, req *fhir.Request) (*authorization, error) {
	subj := &policy.Subject{
		AgentID:    c.principal.AgentID,
		Scopes:     c.effectiveScopes(),
		Patient:    c.principal.Patient,
		Operations: c.grant.operations,
	}
	d := policy.Decide(subj, req)
	if d.Patient != "" {
		c.acc.Patients = []string{d.Patient}
	}
	if !d.Allow {
		// d.Err is a plain not-found where a refusal could tell the agent
		// that a record exists; the audit keeps the real reason.
		return nil, &refusal{answer: d.Err(), reason: d.Reason}
	}
	single := !(req.Interaction.IsSearch() || req.Interaction.IsHistory() ||
		req.Interaction == fhir.InteractionBatch || req.Interaction == fhir.InteractionTransaction ||
		req.Interaction == fhir.InteractionOperation)
	az := &authorization{
		single:        single,
		decision:      d,
		profiles:      c.grant.masks,
		hideExistence: d.NotFoundOnRefusal,
	}
	if len(d.Narrowing) > 0 {
		az.narrow = d.NarrowQuery
	}
	if d.Check != nil {
		az.disclosed = &disclosures{c: c}
		az.check = &responseCheck{
			ctx: context.WithoutCancel(c.r.Context()), rc: d.Check, guard: rt.g.deps.Guard,
			agent: c.principal.AgentID, limits: c.grant.limits, disclosed: az.disclosed,
		}
	}
	if req.Interaction == fhir.InteractionOperation && bulkOperations[req.Operation] {
		if err := rt.g.deps.Guard.CountBulkCall(c.r.Context(), c.principal.AgentID, c.grant.limits); err != nil {
			return nil, err
		}
	}
	if d.Prefetch {
		az.prefetch = d.Check
	}
	return az, nil
}
