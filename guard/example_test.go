package guard_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

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

// A single instance without Redis keeps its kill switch in a state file:
// it survives a restart, and another process (the CLI) opening a Guard on
// the same file reaches the running gateway within a second.
func ExampleOptions_stateFile() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fhirwall-guard-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	opts := guard.Options{StateFile: filepath.Join(dir, "revocations.json")}

	gateway, err := guard.New(ctx, opts)
	if err != nil {
		panic(err) // also when the file is corrupt: never start blind
	}
	cli, err := guard.New(ctx, opts) // `fhirwall admin revoke` in another process
	if err != nil {
		panic(err)
	}
	if err := cli.Revoke(ctx, guard.Revocation{Agent: "agent-billing-07", By: "cli@ops"}); err != nil {
		panic(err) // errors.Is(err, guard.ErrNotPersisted): in force in cli only
	}
	_ = cli.Close()
	for gateway.CheckRevoked(ctx, "agent-billing-07", "") == nil {
		time.Sleep(10 * time.Millisecond) // the gateway polls the file every 250ms
	}
	fmt.Println("running gateway:", outcome(gateway.CheckRevoked(ctx, "agent-billing-07", "")))
	_ = gateway.Close()

	restarted, err := guard.New(ctx, opts)
	if err != nil {
		panic(err)
	}
	defer restarted.Close()
	fmt.Println("after restart:", outcome(restarted.CheckRevoked(ctx, "agent-billing-07", "")))
	_ = restarted.Restore(ctx, "agent-billing-07", "")
	fmt.Println("after restore:", outcome(restarted.CheckRevoked(ctx, "agent-billing-07", "")))
	// Output:
	// running gateway: agent-revoked
	// after restart: agent-revoked
	// after restore: ok
}
