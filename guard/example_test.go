package guard_test

import (
	"context"
	"fmt"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/guard"
)

// A request's path through the guard: the kill switch and the rate limit
// before forwarding, the patient budget on what the response discloses.
func Example() {
	ctx := context.Background()
	g, err := guard.New(ctx, guard.Options{}) // Options.Redis for several replicas
	if err != nil {
		panic(err)
	}
	defer g.Close()

	limits := guard.Strictest(
		guard.Limits{RequestsPerSecond: 20, Burst: 40, PatientsPerHour: 2},
		guard.Limits{RequestsPerSecond: 5},
	)
	serve := func(agent, jti, patient string) error {
		if err := g.CheckRevoked(ctx, agent, jti); err != nil {
			return err
		}
		if _, err := g.AllowRequest(ctx, agent, limits); err != nil {
			return err // answer 429 with Retry-After set from the duration
		}
		// ... forward, filter; then count who was actually disclosed:
		return g.AdmitPatients(ctx, agent, []string{patient}, limits)
	}

	for _, p := range []string{"Patient/1", "Patient/2", "Patient/1", "Patient/3"} {
		fmt.Printf("%s: %s\n", p, outcome(serve("agent-billing-07", "jti-1", p)))
	}
	_ = g.Revoke(ctx, guard.Revocation{Agent: "agent-billing-07", Reason: "walking the patient table", By: "admin"})
	fmt.Println("after revoke:", outcome(serve("agent-billing-07", "jti-1", "Patient/1")))
	// Output:
	// Patient/1: ok
	// Patient/2: ok
	// Patient/1: ok
	// Patient/3: patient-budget
	// after revoke: agent-revoked
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(fhir.ReasonOf(err))
}
