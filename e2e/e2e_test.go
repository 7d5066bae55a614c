//go:build e2e

package e2e

import (
	"testing"
)

// TestEndToEnd runs the flows in order on one stack: reads and searches
// first, writes next, then the kill switch, the auditor, and finally the
// chain check with the gateway stopped.
func TestEndToEnd(t *testing.T) {
	e := startEnv(t)
	steps := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"Unauthenticated", testUnauthenticated},
		{"ReadMasked", testReadMasked},
		{"ForwardedHeaders", testForwardedHeaders},
		{"SearchPagingFhirKit", testSearchPagingFhirKit},
		{"SearchPagingNetHTTP", testSearchPagingNetHTTP},
		{"Include", testInclude},
		{"IncludeOutsideScopes", testIncludeOutsideScopes},
		{"ScopeMissing", testScopeMissing},
		{"GranularScope", testGranularScope},
		{"PatientCompartment", testPatientCompartment},
		{"CreateUpdate", testCreateUpdate},
		{"Transaction", testTransaction},
		{"Batch", testBatch},
		{"Revoke", testRevoke},
		{"AuditorDisclosures", testAuditorDisclosures},
		{"Capabilities", testCapabilities},
		{"AuditVerify", testAuditVerify},
		{"AuditTamperEvident", testAuditTamperEvident},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) { s.run(t, e) })
	}
	if t.Failed() {
		t.Logf("gateway log (tail):\n%s", e.tail(6000))
	}
}
