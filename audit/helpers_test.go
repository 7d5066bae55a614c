package audit

import (
	"crypto/ed25519"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var t0 = time.Date(2026, 11, 26, 2, 14, 0, 0, time.UTC)

// testKey is a fixed checkpoint key so golden files and child processes
// agree.
var testKey = ed25519.NewKeyFromSeed([]byte("fhirwall-audit-test-seed-32bytes"))

// agentAccess is a typical successful read by an AI agent.
func agentAccess() *Access {
	return &Access{
		RequestID: "req-0001",
		Start:     t0,
		End:       t0.Add(42 * time.Millisecond),
		Agent: Agent{
			ID: "agent-billing-07", ClientID: "billing-client", Issuer: "https://idp.example.org",
			JTI: "jti-7f3a", Roles: []string{"billing"}, PurposeOfUse: []string{"HPAYMT"},
		},
		SourceAddr:     "10.1.2.3:51234",
		Route:          "ehr",
		Method:         "GET",
		Path:           "/fhir/Patient/123",
		Interaction:    "read",
		ResourceType:   "Patient",
		ResourceID:     "123",
		Decision:       DecisionAllow,
		Status:         200,
		Patients:       []string{"123"},
		Resources:      []ResourceRef{{Type: "Patient", ID: "123", Version: "3"}},
		Masks:          []MaskApplied{{Profile: "contact-minimum", Path: "Patient.telecom", Count: 2}},
		ResponseSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		ResponseBytes:  1234,
		PolicyVersion:  "sha256:cfg-42",
	}
}

func writeGolden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s missing (run go test -update): %v", path, err)
	}
	return want
}
