package guard

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fhirwall/fhirwall/fhir"
)

// metricValue gathers g's collectors through a private registry (which also
// checks they register cleanly) and returns the value of the named metric
// whose labels include every label in want.
func metricValue(t testing.TB, g *Guard, name string, want map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range g.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func TestMetricsCountRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		g := b.guards(t, 1, Options{})[0]
		if err := g.Revoke(ctx, Revocation{Agent: "a"}); err != nil {
			t.Fatal(err)
		}
		wantReason(t, "revoked", g.CheckRevoked(ctx, "a", ""), fhir.ReasonAgentRevoked)
		wantReason(t, "revoked", g.CheckRevoked(ctx, "a", ""), fhir.ReasonAgentRevoked)
		l := Limits{PatientsPerHour: 1}
		_ = g.AdmitPatients(ctx, "b", []string{"Patient/1"}, l)
		wantReason(t, "budget", g.AdmitPatients(ctx, "b", []string{"Patient/2"}, l), fhir.ReasonPatientBudget)

		for _, tc := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"fhirwall_guard_refusals_total", map[string]string{"reason": "agent-revoked"}, 2},
			{"fhirwall_guard_refusals_total", map[string]string{"reason": "patient-budget"}, 1},
			{"fhirwall_guard_patient_budget_exceeded_total", nil, 1},
			{"fhirwall_guard_revocations", nil, 1},
		} {
			if got := metricValue(t, g, tc.name, tc.labels); got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
		}
		if age := metricValue(t, g, "fhirwall_guard_revocation_cache_age_seconds", nil); age < 0 || age > 1 {
			t.Errorf("cache age = %v on a healthy guard", age)
		}
	})
}
