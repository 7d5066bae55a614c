package guard

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

func TestPatientBudgetAcrossInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		clock := newFakeClock()
		var mu sync.Mutex
		var exceeded []string
		gs := b.guards(t, 3, Options{Now: clock.Now, OnBudgetExceeded: func(_ context.Context, agent string, r fhir.Reason) {
			mu.Lock()
			defer mu.Unlock()
			exceeded = append(exceeded, agent+":"+string(r))
		}})
		l := Limits{PatientsPerHour: 3}
		admit := func(i int, want fhir.Reason, ids ...string) {
			t.Helper()
			wantReason(t, "admit "+ids[0], gs[i].AdmitPatients(ctx, "agent-a", ids, l), want)
		}
		admit(0, "", "Patient/1")
		admit(1, "", "Patient/2", "Patient/2", "") // duplicates and empties count once
		admit(2, "", "Patient/3")
		if full, err := gs[0].PatientBudgetExhausted(ctx, "agent-a", l); err != nil || !full {
			t.Fatalf("PatientBudgetExhausted = %v, %v; want true", full, err)
		}
		admit(0, fhir.ReasonPatientBudget, "Patient/4")
		admit(1, "", "Patient/1", "Patient/3") // already seen always passes
		admit(2, fhir.ReasonPatientBudget, "Patient/1", "Patient/5")
		// Other agents have their own budget.
		wantReason(t, "agent-b", gs[0].AdmitPatients(ctx, "agent-b", []string{"Patient/4"}, l), "")
		if full, _ := gs[0].PatientBudgetExhausted(ctx, "agent-b", l); full {
			t.Fatal("agent-b exhausted after one patient")
		}

		// The window slides: Patient/1 and 3 were seen again at +0, 2 was not.
		clock.Add(30 * time.Minute)
		admit(0, "", "Patient/1") // renewed at +30m
		clock.Add(31 * time.Minute)
		// At +61m, Patient/2 and 3 left the window; Patient/1 stays.
		admit(1, "", "Patient/4", "Patient/5")
		admit(2, fhir.ReasonPatientBudget, "Patient/6")
		clock.Add(30 * time.Minute)
		// At +91m, Patient/1 (seen at +30m) left the window.
		admit(0, "", "Patient/6")

		mu.Lock()
		defer mu.Unlock()
		if len(exceeded) != 3 || exceeded[0] != "agent-a:patient-budget" {
			t.Fatalf("OnBudgetExceeded calls = %v, want 3 for agent-a", exceeded)
		}
	})
}

func TestAutoRevokeOnBudget(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		gs := b.guards(t, 2, Options{AutoRevokeOnBudget: true})
		l := Limits{PatientsPerHour: 2}
		for i, id := range []string{"Patient/1", "Patient/2"} {
			wantReason(t, id, gs[i%2].AdmitPatients(ctx, "walker", []string{id}, l), "")
		}
		wantReason(t, "third", gs[0].AdmitPatients(ctx, "walker", []string{"Patient/3"}, l), fhir.ReasonPatientBudget)
		waitAll(t, gs, "auto-revocation", func(g *Guard) bool {
			return fhir.ReasonOf(g.CheckRevoked(ctx, "walker", "")) == fhir.ReasonAgentRevoked
		})
		rs, err := gs[1].Revocations(ctx)
		if err != nil || len(rs) != 1 || rs[0].By != "fhirwall/guard" {
			t.Fatalf("Revocations = %+v, %v", rs, err)
		}
	})
}

func TestBulkCallsPerDay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		clock := newFakeClock()
		gs := b.guards(t, 3, Options{Now: clock.Now})
		l := Limits{BulkCallsPerDay: 2}
		wantReason(t, "first", gs[0].CountBulkCall(ctx, "agent-a", l), "")
		clock.Add(time.Hour)
		wantReason(t, "second", gs[1].CountBulkCall(ctx, "agent-a", l), "")
		wantReason(t, "third", gs[2].CountBulkCall(ctx, "agent-a", l), fhir.ReasonRateLimited)
		wantReason(t, "other agent", gs[2].CountBulkCall(ctx, "agent-b", l), "")
		clock.Add(23*time.Hour + time.Second) // the first call leaves the rolling day
		wantReason(t, "after a day", gs[0].CountBulkCall(ctx, "agent-a", l), "")
		wantReason(t, "refused calls were not counted", gs[0].CountBulkCall(ctx, "agent-a", l), fhir.ReasonRateLimited)
	})
}
