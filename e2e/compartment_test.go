//go:build e2e

package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// testPatientCompartment: the triage agent's token names patient 0; it
// reads that patient (SSN masked), is refused another, and its searches are
// narrowed to its patient.
func testPatientCompartment(t *testing.T, e *env) {
	p0, p1 := e.upstream.Seed.Patients[0], e.upstream.Seed.Patients[1]
	tok := e.tokens["agent-triage-01"]
	r := e.call(t, "GET", "/fhir/Patient/"+p0, tok, nil)
	if r.status != http.StatusOK {
		t.Fatalf("own patient: %s", r)
	}
	if strings.Contains(string(r.body), "999-00-") {
		t.Errorf("own patient: SSN not masked: %s", r)
	}
	r = e.call(t, "GET", "/fhir/Patient/"+p1, tok, nil)
	if r.status != http.StatusForbidden && r.status != http.StatusNotFound {
		t.Errorf("another patient's record was not refused: %s", r)
	}
	if strings.Contains(string(r.body), p1) && r.status == http.StatusOK {
		t.Errorf("another patient's record disclosed")
	}
	// Naming another patient through a compartment parameter is refused.
	for _, q := range []string{"subject=Patient/" + p1, "subject=" + p1} {
		r = e.call(t, "GET", "/fhir/Observation?"+q, tok, nil)
		expectRefusal(t, r, http.StatusForbidden, fhir.ReasonCompartmentViolation)
	}
	// patient= is not in Observation's compartment definition (subject and
	// performer are), but it names a patient all the same: refused too.
	for _, q := range []string{"patient=" + p1, "patient=Patient/" + p1} {
		r = e.call(t, "GET", "/fhir/Observation?"+q, tok, nil)
		expectRefusal(t, r, http.StatusForbidden, fhir.ReasonCompartmentViolation)
	}

	// The narrowed search, through the npm client: only patient 0's
	// observations, all of them.
	res := e.runAgent(t, "agent-triage-01",
		map[string]any{"op": "search", "resourceType": "Observation", "allPages": true},
		map[string]any{"op": "search", "resourceType": "Patient"},
		map[string]any{"op": "read", "resourceType": "Patient", "id": p1},
		map[string]any{"op": "search", "resourceType": "Observation", "compartment": map[string]string{"resourceType": "Patient", "id": p0}},
		map[string]any{"op": "search", "resourceType": "Observation", "compartment": map[string]string{"resourceType": "Patient", "id": p1}},
	)
	if !res[0].OK {
		t.Fatalf("narrowed Observation search refused: %d %s", res[0].Status, res[0].Outcome)
	}
	n := 0
	for _, page := range res[0].Pages {
		checkNoUpstream(t, e, page)
		obs, _, _ := entries(page)
		for _, o := range obs {
			n++
			subj, _ := o["subject"].(map[string]any)
			if subj["reference"] != "Patient/"+p0 {
				t.Errorf("Observation/%v of %v leaked to the agent of Patient/%s", o["id"], subj["reference"], p0)
			}
		}
	}
	if n != e.upstream.Seed.ObservationsPerPatient {
		t.Errorf("narrowed search: %d observations, want %d", n, e.upstream.Seed.ObservationsPerPatient)
	}
	if !res[1].OK {
		t.Errorf("Patient search refused: %d %s", res[1].Status, res[1].Outcome)
	} else {
		pats, _, _ := entries(res[1].Pages[0])
		if len(pats) != 1 || pats[0]["id"] != p0 {
			t.Errorf("Patient search as triage: %d patients (want only Patient/%s)", len(pats), p0)
		}
	}
	if res[2].OK || (res[2].Status != http.StatusForbidden && res[2].Status != http.StatusNotFound) {
		t.Errorf("fhir-kit-client read of another patient: %+v", res[2])
	}
	// Compartment search: its own compartment gives its observations,
	// another patient's is refused.
	if !res[3].OK {
		t.Errorf("GET Patient/%s/Observation refused: %d %s", p0, res[3].Status, res[3].Outcome)
	} else if obs, _, _ := entries(res[3].Pages[0]); len(obs) != e.upstream.Seed.ObservationsPerPatient {
		t.Errorf("GET Patient/%s/Observation: %d observations, want %d", p0, len(obs), e.upstream.Seed.ObservationsPerPatient)
	}
	if res[4].OK || res[4].Status != http.StatusForbidden {
		t.Errorf("GET Patient/%s/Observation (another patient's compartment) as triage: %+v", p1, res[4])
	}
}
