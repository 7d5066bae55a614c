//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// testCreateUpdate creates and updates a patient with fhir-kit-client, and
// checks Location and the stored result with net/http.
func testCreateUpdate(t *testing.T, e *env) {
	body := map[string]any{
		"resourceType": "Patient",
		"meta":         map[string]any{"tag": []any{map[string]any{"system": "https://fhirwall.dev/fhir/CodeSystem/demo", "code": "synthetic"}}},
		"name":         []any{map[string]any{"family": "Created", "given": []any{"E2e"}}},
		"gender":       "other",
	}
	res := e.runAgent(t, "agent-writer-02", map[string]any{"op": "create", "resourceType": "Patient", "body": body})
	if !res[0].OK {
		t.Fatalf("create refused: %d %s", res[0].Status, res[0].Outcome)
	}
	id, _ := res[0].Result["id"].(string)
	if id == "" {
		t.Fatalf("create returned no id: %v", res[0].Result)
	}
	upd := res[0].Result
	upd["name"] = []any{map[string]any{"family": "Updated", "given": []any{"E2e"}}}
	res = e.runAgent(t, "agent-writer-02", map[string]any{"op": "update", "resourceType": "Patient", "id": id, "body": upd})
	if !res[0].OK {
		t.Fatalf("update refused: %d %s", res[0].Status, res[0].Outcome)
	}
	r := e.call(t, "GET", "/fhir/Patient/"+id, e.tokens["agent-writer-02"], nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "Updated") {
		t.Errorf("read after update: %s", r)
	}
	// net/http create: Location is fhirwall's, not the upstream's.
	r = e.call(t, "POST", "/fhir/Patient", e.tokens["agent-writer-02"], body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %s", r)
	}
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, e.gw+"/fhir/Patient/") || strings.Contains(loc, e.upstreamHP) {
		t.Errorf("Location = %q, want it on %s/fhir", loc, e.gw)
	}
	// The billing agent may not write.
	r = e.call(t, "POST", "/fhir/Patient", e.tokens["agent-billing-07"], body)
	expectRefusal(t, r, http.StatusForbidden, fhir.ReasonScopeMissing)

	// JSON Patch and delete through fhir-kit-client.
	res = e.runAgent(t, "agent-writer-02",
		map[string]any{"op": "patch", "resourceType": "Patient", "id": id,
			"jsonPatch": []any{map[string]any{"op": "replace", "path": "/gender", "value": "unknown"}}},
		map[string]any{"op": "delete", "resourceType": "Patient", "id": id},
		map[string]any{"op": "read", "resourceType": "Patient", "id": id},
	)
	if !res[0].OK || res[0].Result["gender"] != "unknown" {
		t.Errorf("JSON Patch: %+v", res[0])
	}
	if !res[1].OK {
		t.Errorf("delete: %d %s", res[1].Status, res[1].Outcome)
	}
	if res[2].OK || (res[2].Status != http.StatusGone && res[2].Status != http.StatusNotFound) {
		t.Errorf("read after delete: %+v", res[2])
	}
}

// testBatch: a batch is judged entry by entry. The billing agent's read of
// a patient comes back masked; its search of observations is refused in
// its own entry.
func testBatch(t *testing.T, e *env) {
	p0 := e.upstream.Seed.Patients[0]
	batch := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/" + p0}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Observation?patient=" + p0}},
	}}
	r := e.call(t, "POST", "/fhir", e.tokens["agent-billing-07"], batch)
	if r.status == http.StatusForbidden {
		return // refusing the whole batch is safe too
	}
	if r.status != http.StatusOK {
		t.Fatalf("%s", r)
	}
	b := r.object(t)
	checkNoUpstream(t, e, b)
	es, _ := b["entry"].([]any)
	if b["type"] != "batch-response" || len(es) != 2 {
		t.Fatalf("not a batch-response of 2 entries: %s", r)
	}
	first, _ := es[0].(map[string]any)
	if p, ok := first["resource"].(map[string]any); !ok {
		t.Errorf("batch entry 1 (read Patient/%s) has no resource: %v", p0, first)
	} else {
		checkBillingPatient(t, p, p0)
	}
	second, _ := es[1].(map[string]any)
	resp, _ := second["response"].(map[string]any)
	if st, _ := resp["status"].(string); !strings.HasPrefix(st, "403") {
		t.Errorf("batch entry 2 (Observation search, no scope) status %q, want 403", st)
	}
	if _, ok := second["resource"]; ok {
		t.Errorf("batch entry 2 carries a resource the agent may not read: %v", second)
	}
}

// testTransaction posts a transaction (a patient and an observation that
// references it by urn:uuid) through fhir-kit-client.
func testTransaction(t *testing.T, e *env) {
	const pid = "urn:uuid:7b0d5b5e-2f4c-4d1e-9c59-0b1f6f2f1a01"
	tx := map[string]any{
		"resourceType": "Bundle",
		"type":         "transaction",
		"entry": []any{
			map[string]any{
				"fullUrl":  pid,
				"resource": map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Transacted"}}},
				"request":  map[string]any{"method": "POST", "url": "Patient"},
			},
			map[string]any{
				"resource": map[string]any{
					"resourceType": "Observation", "status": "final",
					"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
					"subject": map[string]any{"reference": pid},
				},
				"request": map[string]any{"method": "POST", "url": "Observation"},
			},
		},
	}
	res := e.runAgent(t, "agent-writer-02", map[string]any{"op": "transaction", "body": tx})
	if !res[0].OK {
		t.Fatalf("transaction refused: %d %s", res[0].Status, res[0].Outcome)
	}
	b := res[0].Result
	if b["type"] != "transaction-response" {
		t.Fatalf("not a transaction-response: %v", b)
	}
	raw, _ := json.Marshal(b)
	if strings.Contains(string(raw), e.upstreamHP) {
		t.Errorf("the upstream address leaks in the transaction-response: %.800s", raw)
	}
	es, _ := b["entry"].([]any)
	if len(es) != 2 {
		t.Fatalf("transaction-response has %d entries, want 2", len(es))
	}
	var patientLoc string
	for _, x := range es {
		en, _ := x.(map[string]any)
		resp, _ := en["response"].(map[string]any)
		if st, _ := resp["status"].(string); !strings.HasPrefix(st, "201") {
			t.Errorf("entry status %q, want 201", st)
		}
		if loc, _ := resp["location"].(string); strings.Contains(loc, "Patient/") {
			patientLoc = loc
		}
	}
	// The observation really references the new patient.
	pid2 := patientLoc[strings.Index(patientLoc, "Patient/")+len("Patient/"):]
	pid2, _, _ = strings.Cut(pid2, "/")
	r := e.call(t, "GET", "/fhir/Observation?subject=Patient/"+url.QueryEscape(pid2), e.tokens["agent-writer-02"], nil)
	if r.status != http.StatusOK {
		t.Fatalf("%s", r)
	}
	obs, _, _ := entries(r.object(t))
	if len(obs) != 1 {
		t.Errorf("the transaction's observation of Patient/%s: found %d", pid2, len(obs))
	}
	// A transaction is judged entry by entry: the billing agent may not
	// create through one.
	r = e.call(t, "POST", "/fhir", e.tokens["agent-billing-07"], tx)
	if r.status != http.StatusForbidden {
		t.Errorf("a transaction writing outside the agent's scopes was not refused: %s", r)
	}
}
