package guard

import (
	"context"
	"slices"

	"github.com/fhirwall/fhirwall/fhir"
)

// AdmitPatients records that a response discloses data of patients (ids as
// the audit names them, e.g. "Patient/123") to agent, against
// l.PatientsPerHour distinct patients in any sliding hour, shared by every
// replica. Patients already disclosed to the agent within the hour always
// pass (and their window restarts); new ones pass only if all of them fit.
// On refusal nothing is recorded and the error is an *fhir.Error
// patient-budget; the caller must withhold that data. A streaming caller
// calls it once per entry with that entry's patients.
//
// Empty ids are ignored. A zero limit means unlimited; a negative one
// refuses every new patient. Fail closed: if Redis cannot be reached the
// answer is a refusal with ReasonUnavailable.
//
// On a budget refusal Options.OnBudgetExceeded is called and, with
// Options.AutoRevokeOnBudget, the agent is revoked everywhere.
func (g *Guard) AdmitPatients(ctx context.Context, agent string, patients []string, l Limits) error {
	if l.PatientsPerHour == 0 {
		return nil
	}
	ids := compactIDs(patients)
	if len(ids) == 0 {
		return nil
	}
	limit := max(l.PatientsPerHour, 0)
	var ok bool
	if g.rdb != nil {
		err := g.redisCall(ctx, func(ctx context.Context) (err error) {
			ok, err = g.redisAdmitPatients(ctx, agent, ids, limit)
			return err
		})
		if err != nil {
			return g.unavailable("patients", err)
		}
	} else {
		ok = g.mem.admitPatients(agent, ids, g.now(), limit)
	}
	if ok {
		return nil
	}
	return g.overBudget(ctx, agent, fhir.Errorf(fhir.ReasonPatientBudget,
		"the agent may receive data of at most %d distinct patients per hour", l.PatientsPerHour))
}

// PatientBudgetExhausted reports whether the agent has no room for a new
// patient in its current window: a pre-check before forwarding, so a
// request that can only disclose new patients is refused early. The
// authoritative count is AdmitPatients'. With a Redis error it returns true
// and the error (fail closed).
func (g *Guard) PatientBudgetExhausted(ctx context.Context, agent string, l Limits) (bool, error) {
	if l.PatientsPerHour == 0 {
		return false, nil
	}
	if l.PatientsPerHour < 0 {
		return true, nil
	}
	var n int
	if g.rdb != nil {
		err := g.redisCall(ctx, func(ctx context.Context) (err error) {
			n, err = g.redisPatientCount(ctx, agent)
			return err
		})
		if err != nil {
			return true, g.unavailable("patients", err)
		}
	} else {
		n = g.mem.patientCount(agent, g.now())
	}
	return n >= l.PatientsPerHour, nil
}

// CountBulkCall spends one of the agent's $everything / bulk-export calls,
// l.BulkCallsPerDay in any rolling 24 hours across replicas. It returns nil
// or an *fhir.Error rate-limited (a daily call quota); a refused call is not
// counted, and Options.OnBudgetExceeded is called. Zero means unlimited;
// fail closed on Redis errors.
func (g *Guard) CountBulkCall(ctx context.Context, agent string, l Limits) error {
	if l.BulkCallsPerDay == 0 {
		return nil
	}
	limit := max(l.BulkCallsPerDay, 0)
	var ok bool
	if g.rdb != nil {
		err := g.redisCall(ctx, func(ctx context.Context) (err error) {
			ok, err = g.redisBulkCall(ctx, agent, limit)
			return err
		})
		if err != nil {
			return g.unavailable("bulk", err)
		}
	} else {
		ok = g.mem.bulkCall(agent, g.now(), limit)
	}
	if ok {
		return nil
	}
	e := g.refuse(fhir.Errorf(fhir.ReasonRateLimited,
		"the agent may make at most %d bulk or $everything calls per 24 hours", l.BulkCallsPerDay))
	if g.opts.OnBudgetExceeded != nil {
		g.opts.OnBudgetExceeded(ctx, agent, e.Reason)
	}
	return e
}

// CheckResources refuses a response carrying more than
// l.ResourcesPerResponse resources with an *fhir.Error resource-cap. It
// needs no shared state; it lives here so every limit is counted in the
// same metrics.
func (g *Guard) CheckResources(agent string, n int, l Limits) error {
	if l.ResourcesPerResponse == 0 || n <= l.ResourcesPerResponse {
		return nil
	}
	return g.refuse(fhir.Errorf(fhir.ReasonResourceCap,
		"the response holds more than %d resources", max(l.ResourcesPerResponse, 0)))
}

// overBudget runs the budget-exceeded hooks and returns e. A failed
// auto-revocation is counted but does not change the answer: the request
// is refused either way.
func (g *Guard) overBudget(ctx context.Context, agent string, e *fhir.Error) error {
	g.refuse(e)
	g.m.budgetExceeded.Inc()
	if g.opts.OnBudgetExceeded != nil {
		g.opts.OnBudgetExceeded(ctx, agent, e.Reason)
	}
	if _, done := g.rev.Load().agents[agent]; g.opts.AutoRevokeOnBudget && !done {
		err := g.Revoke(context.WithoutCancel(ctx), Revocation{
			Agent:  agent,
			Reason: "patient budget exceeded",
			By:     "fhirwall/guard",
		})
		if err != nil {
			g.m.autoRevokeFailures.Inc()
		}
	}
	return e
}

// compactIDs drops empty ids and duplicates, keeping the caller's slice
// untouched; the common one-patient case does not allocate.
func compactIDs(ids []string) []string {
	if len(ids) == 1 {
		if ids[0] == "" {
			return nil
		}
		return ids
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
