package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fhirwall/fhirwall/audit"
)

// The gateway's side of the contract: record the intent before forwarding
// (refuse with 503 if that fails), complete it when the response ends.
func Example() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	log, err := audit.Open(ctx, "sqlite://"+filepath.Join(dir, "audit.db"), audit.Options{Source: "gw-1"})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer log.Close()

	a := &audit.Access{
		RequestID: "req-42", Start: time.Now(),
		Agent:      audit.Agent{ID: "agent-billing-07", ClientID: "billing-client", JTI: "jti-1", Roles: []string{"billing"}},
		SourceAddr: "10.1.2.3:5000", Route: "ehr", Method: "GET", Path: "/fhir/Patient/123",
		Interaction: "read", ResourceType: "Patient", ResourceID: "123", Decision: audit.DecisionAllow,
	}
	pending, err := log.Intent(ctx, a)
	if err != nil {
		fmt.Println("refuse with 503:", err) // nothing goes upstream
		return
	}
	// ... forward, mask and stream the response, then:
	a.Status, a.End = 200, time.Now()
	a.Patients = []string{"123"}
	a.Resources = []audit.ResourceRef{{Type: "Patient", ID: "123", Version: "3"}}
	if err := pending.Complete(ctx, a); err != nil {
		fmt.Println("complete:", err)
	}

	rep, _ := log.Verify(ctx)
	fmt.Println("chain ok:", rep.OK, "records:", rep.Records)
	ds, _ := log.Disclosures(ctx, "123")
	fmt.Println("disclosures of Patient/123:", len(ds), ds[0].AgentID, ds[0].Resources)
	// Output:
	// chain ok: true records: 2
	// disclosures of Patient/123: 1 agent-billing-07 [Patient/123/_history/3]
}
